'use strict'
// Where the CPU goes around a reload's commit, for bench/reload-tail.js --cpu-trace: a sampler in a
// process of its own (not in the load generator, whose own event loop is part of every latency it
// records) reads every Node thread's time on a CPU and time spent runnable but waiting for one
// (/proc/<pid>/task/<tid>/schedstat, in ns) every 10 ms; afterwards each reload's samples are cut into the same buckets around its commit as the
// latencies, by role: the load generator, the old generation's main thread and its helper threads
// (V8's compilers and collectors, libuv's pool), the same for the new one, and the rest (the
// supervisor). Linux only.
const fs = require('node:fs')
const path = require('node:path')
const { fork } = require('node:child_process')

const SAMPLE_MS = 10
/** Which processes are Node's: the main thread's name ('node', 'node-MainThread' from Node 24, 'MainThread' where renamed). */
const isNode = (comm) => comm === 'node' || comm.endsWith('MainThread')

/** Starts the sampler; stop() ends it and gives its samples: [wallMs, pid, tid, isMain, cpuNs, waitNs]. */
function startCpuTrace () {
  if (process.platform !== 'linux') throw new Error(`--cpu-trace reads /proc: Linux only (this is ${process.platform})`)
  const file = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'fhr-cpu-')), 'samples.json')
  const child = fork(__filename, ['--sample', file], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const ready = new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`the CPU sampler (bench/cpu-trace.js) ended (exit code ${code}) before it sampled`)))
  })
  let stopped
  return {
    ready,
    /** Ends the sampler (once; later calls give the same samples). */
    stop () {
      stopped ??= new Promise((resolve) => {
        const collect = () => {
          let rows = []
          try { rows = JSON.parse(fs.readFileSync(file, 'utf8')) } catch {}
          fs.rmSync(path.dirname(file), { recursive: true, force: true })
          resolve(rows)
        }
        if (child.exitCode !== null || child.signalCode !== null) return collect()
        child.once('exit', collect)
        child.send('stop', () => {})
      })
      return stopped
    }
  }
}

function sample (file) {
  const rows = []
  let threads = []
  const read = (f) => { try { return fs.readFileSync(f, 'utf8') } catch { return undefined } }
  const discover = () => {
    threads = []
    for (const pid of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(pid) || Number(pid) === process.pid || !isNode((read(`/proc/${pid}/comm`) ?? '').trim())) continue
      let tids = []
      try { tids = fs.readdirSync(`/proc/${pid}/task`) } catch {}
      for (const tid of tids) threads.push([Number(pid), Number(tid), `/proc/${pid}/task/${tid}/schedstat`])
    }
  }
  const tick = () => {
    const now = performance.timeOrigin + performance.now()
    for (const [pid, tid, stat] of threads) {
      const text = read(stat)
      if (text === undefined) continue
      const [cpuNs, waitNs] = text.split(' ').map(Number)
      rows.push([now, pid, tid, pid === tid, cpuNs, waitNs])
    }
  }
  discover()
  // New processes (the successor) and threads are found within 100 ms.
  const discovering = setInterval(discover, 100)
  const ticking = setInterval(tick, SAMPLE_MS)
  process.on('message', () => {
    clearInterval(discovering)
    clearInterval(ticking)
    fs.writeFileSync(file, JSON.stringify(rows))
    process.exit(0)
  })
  // The bench gone (killed, say): nothing to write for.
  process.on('disconnect', () => process.exit(0))
  process.send('sampling')
}

const ROLES = ['load generator', 'old generation, main thread', 'old generation, other threads', 'new generation, main thread', 'new generation, other threads', 'other Node processes (the supervisor, if any)']

/** The time a role's threads were ready to run but waited for a CPU (shown for the main threads and the load generator). */
const waiting = (role) => `waiting for a CPU: ${role}`
const WAIT_SHOWN = [ROLES[0], ROLES[1], ROLES[3]]
/** The stretch before each signal that the steady column averages. */
const STEADY_MS = 1000

/**
 * CPU ms per bucket around each commit, averaged over the reloads, by role, and the same of the
 * time waited for a CPU (`waiting(role)`). `commits`: each reload's signal and commit (`signalAt`,
 * `at`, wall ms) and the pids that answered before it (`oldPids`) and after it (`newPids`). The
 * last value of each role is its steady state: per bucket's length, over the second before each
 * signal (the old generation then serves alone).
 */
function cpuAroundCommits (rows, commits, { benchPid, bucketsFrom, bucketMs, buckets }) {
  const byThread = new Map()
  for (const [t, pid, tid, isMain, cpuNs, waitNs] of rows) {
    let thread = byThread.get(tid)
    if (thread === undefined) byThread.set(tid, thread = { pid, isMain, cpu: [], wait: [] })
    thread.cpu.push([t, cpuNs])
    thread.wait.push([t, waitNs])
  }
  const totals = Object.fromEntries([...ROLES, ...ROLES.map(waiting)].map((role) => [role, new Array(buckets + 1).fill(0)]))
  const add = (role, thread, i, from, to) => {
    const share = bucketMs / (to - from) / 1e6 / commits.length
    totals[role][i] += (valueAt(thread.cpu, to) - valueAt(thread.cpu, from)) * share
    totals[waiting(role)][i] += (valueAt(thread.wait, to) - valueAt(thread.wait, from)) * share
  }
  for (const commit of commits) {
    for (const thread of byThread.values()) {
      const role = roleOf(thread, commit, benchPid)
      for (let i = 0; i < buckets; i++) {
        const from = commit.at + bucketsFrom + i * bucketMs
        add(role, thread, i, from, from + bucketMs)
      }
      add(role, thread, buckets, commit.signalAt - STEADY_MS, commit.signalAt)
    }
  }
  return totals
}

function roleOf (thread, commit, benchPid) {
  if (thread.pid === benchPid) return ROLES[0]
  if (commit.oldPids.has(thread.pid)) return thread.isMain ? ROLES[1] : ROLES[2]
  if (commit.newPids.has(thread.pid)) return thread.isMain ? ROLES[3] : ROLES[4]
  return ROLES[5]
}

/** A thread's counter (ns) at wall time t, between its samples (flat before its first and after its last). */
function valueAt (points, t) {
  if (t <= points[0][0]) return points[0][1]
  const last = points[points.length - 1]
  if (t >= last[0]) return last[1]
  let lo = 0
  let hi = points.length - 1
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (points[mid][0] <= t) lo = mid
    else hi = mid
  }
  const [t0, ns0] = points[lo]
  const [t1, ns1] = points[hi]
  return ns0 + (ns1 - ns0) * (t - t0) / (t1 - t0)
}

/** Adds one run's per-role buckets into a variant's running sum (weighted by its reloads). */
function addInto (sum, totals, weight) {
  for (const [role, values] of Object.entries(totals)) {
    sum[role] ??= new Array(values.length).fill(0)
    values.forEach((v, i) => { sum[role][i] += v * weight })
  }
}

/** The table: CPU ms per bucket by role, the machine's share used, and the latencies in the same buckets. */
function cpuTable (name, cpu, weight, { bucketsFrom, bucketMs, buckets, cpus }, latency) {
  const header = [...Array.from({ length: buckets }, (_, i) => `${bucketsFrom + i * bucketMs}`), `steady (the ${STEADY_MS / 1000} s before each signal)`]
  const lines = [
    `CPU time (ms of each ${bucketMs} ms, mean of ${weight} reloads) around the commit (ms from the commit), ${name}:`,
    `| who | ${header.join(' | ')} |`,
    `|---|${header.map(() => '---').join('|')}|`
  ]
  const total = new Array(buckets + 1).fill(0)
  for (const role of ROLES) {
    const values = (cpu[role] ?? new Array(buckets + 1).fill(0)).map((v) => v / weight)
    values.forEach((v, i) => { total[i] += v })
    lines.push(`| ${role} | ${values.map((v) => v.toFixed(1)).join(' | ')} |`)
  }
  lines.push(`| all of them, % of the ${cpus} CPUs | ${total.map((v) => Math.round(100 * v / (bucketMs * cpus))).join(' | ')} |`)
  for (const role of WAIT_SHOWN) {
    const values = (cpu[waiting(role)] ?? new Array(buckets + 1).fill(0)).map((v) => v / weight)
    lines.push(`| ${waiting(role)} | ${values.map((v) => v.toFixed(1)).join(' | ')} |`)
  }
  for (const [label, values] of Object.entries(latency)) lines.push(`| ${label} | ${values.join(' | ')} |`)
  return lines.join('\n')
}

if (process.argv[2] === '--sample') sample(process.argv[3])

module.exports = { startCpuTrace, cpuAroundCommits, addInto, cpuTable }

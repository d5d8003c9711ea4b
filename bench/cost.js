'use strict'
// The plugin's per-request CPU cost: CPU time of the server process (all its threads, GC included,
// from process.cpuUsage() over IPC) per request answered, at a fixed request rate well below
// saturation, on fresh processes.
//
// Why this way: requests/s swing by ±20% between runs on this shared 2-core machine; under
// callgrind the app runs ~50x slower, so timer-driven work (GC, @fastify/under-pressure's sampling)
// is charged to far fewer requests than in production, and two runs of the same code gave ratios
// 0.79 and 0.99. Here every variant runs at the same time, on the same machine, under the same
// paced load (bench/paced-load.js), so whatever else the machine does falls on all of them alike;
// each round starts fresh processes (JIT and heap layout differ from process to process); the
// ratio to bare Fastify is taken within each round, and the median over rounds is reported with
// its spread. A fixed rate keeps the servers out of saturation, where batching changes the cost
// of a request with the load.
//
//   node bench/cost.js [--quick] [--before <a built checkout> [--before-label <name>]] [--write]
//
// --before measures that checkout's plugin (its dist/) beside this one in the same rounds; --write
// puts the table into BENCHMARKS.md between its per-request markers, leaving the rest alone.
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { PacedLoad, drive } = require('./paced-load')
const { freePort } = require('../tools/free-port')

const APP = path.join(__dirname, 'app.js')
const BENCHMARKS = path.join(__dirname, '..', 'BENCHMARKS.md')
const START = '<!-- per-request cost: written by bench/cost.js -->'
const END = '<!-- end of per-request cost -->'
const TARGET = 0.99

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const FULL = { rounds: 8, rate: 1000, connections: 10, idleMs: 1500, warmupMs: 3000, windowMs: 12000 }
const QUICK = { rounds: 2, rate: 1000, connections: 10, idleMs: 1000, warmupMs: 2000, windowMs: 4000 }

function variants (before) {
  return [
    { key: 'bare', name: 'bare Fastify', env: {} },
    // A second bare Fastify: the reference is the mean of both; its ratio to the first is the noise.
    { key: 'bare2', name: 'bare Fastify, a second process (ratio: the first over this one, the noise)', env: {} },
    { key: 'defaults', name: 'Fastify + plugin, defaults', env: { BENCH_PLUGIN: '1' }, headline: true },
    ...(before === undefined
      ? []
      : [{ key: 'before', name: `Fastify + plugin, defaults, ${before.label}`, env: { BENCH_PLUGIN: '1', BENCH_PLUGIN_ROOT: before.root } }]),
    { key: 'underPressure', name: 'Fastify + plugin, underPressure: {} (registered without thresholds)', env: { BENCH_PLUGIN: '1', BENCH_UNDER_PRESSURE: '{}' } }
  ]
}

async function answering (port, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`a bench app exited with code ${child.exitCode}`)
    try {
      if ((await fetch(`http://127.0.0.1:${port}/`)).ok) return
    } catch {}
    await sleep(50)
  }
  throw new Error(`a bench app did not answer within ${timeoutMs} ms`)
}

/**
 * A fresh app process of this variant, answering, with its CPU time on request. `wrap(dir)` gives
 * a command to run Node under (bench/instructions.js: valgrind), in the process's own directory.
 */
async function startServer (variant, { wrap = () => [], nodeArgs = [], bootTimeoutMs = 30000 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-cost-'))
  fs.writeFileSync(path.join(dir, 'VERSION'), '1\n')
  const port = await freePort()
  const [command, ...args] = [...wrap(dir), process.execPath, ...nodeArgs, APP]
  const child = spawn(command, args, {
    cwd: dir,
    // One process measured: keepPid would make it the supervisor of a worker (Node 22.15+).
    env: { ...process.env, PORT: String(port), BENCH_CPU: '1', FASTIFY_HOT_RELOAD_KEEP_PID: '0', ...variant.env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
  const server = {
    variant,
    port,
    child,
    dir,
    cpuMicros () {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${variant.name}: no CPU reading within 5 s`)), 5000)
        child.once('message', (message) => { clearTimeout(timer); resolve(message.cpuMicros) })
        child.send('cpu')
      })
    },
    async stop () {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve))
        process.kill(child.pid, 'SIGKILL')
        await gone
      }
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  try {
    await answering(port, child, bootTimeoutMs)
  } catch (error) {
    await server.stop()
    throw error
  }
  return server
}

const readAll = (servers) => Promise.all(servers.map((server) => server.cpuMicros()))

/** One round: fresh processes of every variant, idle, then all under the same paced load at once. */
async function round (list, config) {
  const servers = []
  try {
    for (const variant of list) servers.push(await startServer(variant))
    // Idle: what runs on timers alone (no request), per second.
    const idleFrom = await readAll(servers)
    await sleep(config.idleMs)
    const idleTo = await readAll(servers)
    const loads = servers.map((server) => new PacedLoad({ port: server.port, rate: config.rate, connections: config.connections }))
    for (const load of loads) await load.open()
    const driver = drive(loads)
    try {
      await sleep(config.warmupMs)
      const from = await readAll(servers)
      const countedFrom = loads.map((load) => load.completed)
      await sleep(config.windowMs)
      const to = await readAll(servers)
      const countedTo = loads.map((load) => load.completed)
      return servers.map((server, i) => ({
        key: server.variant.key,
        idleMicrosPerSecond: ((idleTo[i] - idleFrom[i]) * 1000) / config.idleMs,
        requests: countedTo[i] - countedFrom[i],
        microsPerRequest: (to[i] - from[i]) / (countedTo[i] - countedFrom[i]),
        late: loads[i].late,
        failed: loads[i].failed
      }))
    } finally {
      driver.stop()
      for (const load of loads) load.close()
    }
  } finally {
    for (const server of servers) await server.stop()
  }
}

/**
 * One round's results by variant, each with its ratio: bare Fastify's cost over the variant's. The
 * reference is the mean of the two bare processes (half the noise of one); the second one's own
 * ratio is taken to the first, to show that noise. A variant without a cost (`cost(r)` undefined)
 * gets no ratio.
 */
function withRatios (result, cost) {
  const bare = cost(result.find((r) => r.key === 'bare'))
  const bare2 = cost(result.find((r) => r.key === 'bare2'))
  const reference = (bare + bare2) / 2
  return Object.fromEntries(result.map((r) => {
    const own = cost(r)
    const ratio = own === undefined ? undefined : r.key === 'bare' ? bare / reference : r.key === 'bare2' ? bare / bare2 : reference / own
    return [r.key, { ...r, ratio }]
  }))
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
const round3 = (n) => Math.round(n * 1000) / 1000
const round1 = (n) => Math.round(n * 10) / 10

/**
 * CPU µs per request of each variant and, as `ratio`, bare Fastify's over the variant's (the
 * throughput the plugin leaves when the CPU is the limit): the median over rounds, with the lowest
 * and highest round.
 */
async function cpuCost ({ quick = false, before, log = () => {}, config: overrides = {}, only } = {}) {
  const config = { ...(quick ? QUICK : FULL), ...overrides }
  const list = variants(before).filter((v) => only === undefined || only.includes(v.key))
  const rounds = []
  for (let i = 0; i < config.rounds; i++) {
    // A different start order each round: nothing systematic rides on being spawned first.
    const order = list.map((_, j) => list[(i + j) % list.length])
    log(`bench: per-request CPU, round ${i + 1} of ${config.rounds}...`)
    const result = await round(order, config)
    rounds.push(withRatios(result, (r) => r.microsPerRequest))
  }
  const rows = list.map((variant) => {
    const per = rounds.map((r) => r[variant.key])
    const ratios = per.map((r) => r.ratio)
    return {
      key: variant.key,
      name: variant.name,
      headline: variant.headline === true,
      microsPerRequest: round1(median(per.map((r) => r.microsPerRequest))),
      ratio: round3(median(ratios)),
      ratioMin: round3(Math.min(...ratios)),
      ratioMax: round3(Math.max(...ratios)),
      ratios: ratios.map(round3),
      idleMicrosPerSecond: Math.round(median(per.map((r) => r.idleMicrosPerSecond))),
      requestsPerSecond: Math.round(median(per.map((r) => (r.requests * 1000) / config.windowMs))),
      late: per.reduce((sum, r) => sum + r.late, 0),
      failed: per.reduce((sum, r) => sum + r.failed, 0)
    }
  })
  return { config, quick, rows }
}

/** The per-request table, in Markdown. */
function costTable (cost) {
  const { rounds, rate, connections, warmupMs, windowMs } = cost.config
  const lines = []
  const how = `CPU time of the server process per request answered, all its threads and GC included; ${rate} keep-alive requests/s ` +
    `asked of each on ${connections} connections, ${warmupMs / 1000} s warm-up, ${windowMs / 1000} s window; every variant at once, ` +
    `fresh processes each round; median of ${rounds} rounds${cost.quick ? ' (quick run: a smoke test of the measurement, not a result)' : ''}`
  lines.push(`| per-request CPU cost (${how}) | CPU µs per request | bare Fastify's over this (throughput when CPU-bound) | lowest – highest round | requests/s answered | idle CPU (µs per s, no requests) |`)
  lines.push('|---|---|---|---|---|---|')
  for (const row of cost.rows) {
    const miss = row.headline && row.ratio < TARGET ? ` ✗ (target ${TARGET})` : ''
    const name = row.headline ? `**${row.name}**` : row.name
    const failed = row.failed > 0 ? ` (${row.failed} failed)` : ''
    lines.push(`| ${name} | ${row.microsPerRequest} | ${row.ratio}${miss}${failed} | ${row.ratioMin} – ${row.ratioMax} | ${row.requestsPerSecond} | ${row.idleMicrosPerSecond} |`)
  }
  return lines.join('\n')
}

/** [what, met] for the bench's target list. */
function costTarget (cost) {
  const row = cost.rows.find((r) => r.headline)
  return [`plugin with its defaults: per-request CPU cost ≤ 1/${TARGET} of bare Fastify's (CPU time per request, median ratio ${row.ratio}, rounds ${row.ratioMin} – ${row.ratioMax}${cost.quick ? '; quick run, not a result' : ''})`,
    row.ratio >= TARGET && row.failed === 0]
}

/** The block BENCHMARKS.md keeps between its per-request markers. */
function costSection (cost, when = new Date().toISOString()) {
  const [what, met] = costTarget(cost)
  return `${START}
${costTable(cost)}

${met ? '✓' : '✗ missed:'} ${what}. Measured ${when}, Node ${process.version}, ${os.cpus().length} CPUs.

How to read it: each round starts a fresh process of every variant and loads them all at the same
time with the same paced keep-alive load (\`bench/paced-load.js\`), so whatever else the shared machine
does falls on all of them alike; CPU time is read from each server (\`process.cpuUsage()\`: every
thread, GC included) and divided by the requests it answered; the ratio to bare Fastify is taken
within the round, to the mean of two bare Fastify processes. The second bare process's ratio is the
first one's over it: the noise of the measurement (the bare row's own ratio is to the mean). **idle CPU** is what each process spends on timers alone, before any request
(@fastify/under-pressure samples the event loop every 10 ms): a cost per second, not per request.
\`npm run bench:cost\` reruns only this table (\`-- --before <built checkout>\` adds another build of the
plugin to the same rounds, \`-- --write\` rewrites this section).
${END}`
}

function writeCostSection (cost, file = BENCHMARKS) {
  const text = fs.readFileSync(file, 'utf8')
  const from = text.indexOf(START)
  const to = text.indexOf(END)
  if (from === -1 || to === -1) throw new Error(`${file} has no per-request markers (${START} ... ${END})`)
  fs.writeFileSync(file, text.slice(0, from) + costSection(cost) + text.slice(to + END.length))
}

module.exports = { cpuCost, costTable, costTarget, costSection, writeCostSection, variants, startServer, withRatios, median }

function argument (name) {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : process.argv[i + 1]
}

async function main () {
  const beforeRoot = argument('--before')
  let before
  if (beforeRoot !== undefined) {
    const root = path.resolve(beforeRoot)
    if (!fs.existsSync(path.join(root, 'dist', 'index.js'))) throw new Error(`--before ${root}: no dist/index.js there (build it first)`)
    before = { root, label: argument('--before-label') ?? path.basename(root) }
  }
  const started = Date.now()
  const cost = await cpuCost({ quick: process.argv.includes('--quick'), before, log: (line) => process.stderr.write(line + '\n') })
  console.log(costTable(cost))
  const [what, met] = costTarget(cost)
  console.log(`\n${met ? '✓' : '✗ missed:'} ${what}`)
  console.log(`per-round ratios: ${cost.rows.map((r) => `${r.key} ${r.ratios.join(' ')}`).join('; ')}`)
  console.log(`${os.cpus().length} CPUs, Node ${process.version}, ${Math.round((Date.now() - started) / 1000)} s`)
  if (process.argv.includes('--write')) writeCostSection(cost)
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}

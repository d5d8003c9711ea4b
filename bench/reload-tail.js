'use strict'
// Calm reloads: p99 latency in the reload window against steady p99, and the reload's time split
// into the successor's own boot and what the reload added, for one or more builds of the plugin
// side by side in one run (interleaved rounds, fresh processes each time), so that the shared
// machine's noise falls on all of them alike.
//
//   node bench/reload-tail.js [--before <built checkout> [--before-label <name>]] [--mode standalone|supervisor]
//     [--workers N] [--rounds R] [--reloads K] [--pause-ms P] [--variant 'name:VAR=value,VAR2=value'] [--node 22 ...] [--cpu-trace] [--client-nice N] [--write]
//
// Each run: the bench app (bench/app.js) under 30 keep-alive clients (tools/load-recorder.js,
// every request's outcome; each client sends its next request as soon as it has the answer, which
// keeps both cores busy, or --pause-ms P after it: a load that leaves the machine room), 3 s
// steady (the first second is the app's own warm-up, not counted),
// then K reloads 4 s apart by signal (SIGUSR2 standalone, SIGHUP to the supervisor). The reload
// window is the signal until a new pid answers, at least until
// the commit and until the old generation answered its last request (its connections all moved),
// + 500 ms. Each reload's own result (durationMs, bootMs) is read from the reload record
// the plugin or the supervisor writes beside its pid file. A first run, of the first build, warms the
// load generator (this process) and is not counted. The p99 in the 3.5 s from each signal is given too: a
// stretch of the same length for every build, whatever its window. --variant runs this build with extra
// environment variables (an experiment); --node <major or version> runs this build's app on that Node
// as well (installed by .ci/node.sh; repeatable), interleaved with the others, so that Node versions
// are compared under the same machine conditions (with --before, both builds on each, and each
// --variant on each); --client-nice N
// (Linux, autogroups; below 0 needs CAP_SYS_NICE) runs the load generator at that autogroup niceness, as
// a client on another machine would keep its CPU; --cpu-trace (Linux) adds, for each build, where the
// CPU went around the commit (bench/cpu-trace.js: the load generator, the old and the new generation's
// main and other threads, the supervisor) beside the median and p99 latency in the same 50 ms buckets;
// --write puts the table into BENCHMARKS.md between its markers.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Load } = require('../tools/load-recorder')
const contenders = require('./contenders')
const { freePort } = require('../tools/free-port')
const { startCpuTrace, cpuAroundCommits, addInto, cpuTable } = require('./cpu-trace')

const BENCHMARKS = path.join(__dirname, '..', 'BENCHMARKS.md')
// One section per mode (standalone, supervisor, supervisor with N workers), each between its markers.
const modeKey = () => `${CONFIG.mode}${CONFIG.workers > 1 ? ` ${CONFIG.workers} workers` : ''}${CONFIG.pauseMs > 0 ? ` pause ${CONFIG.pauseMs} ms` : ''}${CONFIG.clientNice !== undefined ? ` client nice ${CONFIG.clientNice}` : ''}`
const startMarker = () => `<!-- reload tail (${modeKey()}): written by bench/reload-tail.js -->`
const endMarker = () => `<!-- end of reload tail (${modeKey()}) -->`
const HEADING = '## Calm reloads (bench/reload-tail.js)'
const KEPT = '<!-- Written by other measurements (see each section); npm run bench keeps everything below. -->'
const { sleep } = contenders

function argument (name) {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : process.argv[i + 1]
}
function argumentsOf (name) {
  return process.argv.flatMap((arg, i) => arg === name ? [process.argv[i + 1]] : [])
}

const CONFIG = {
  mode: argument('--mode') ?? 'standalone',
  workers: Number(argument('--workers') ?? 1),
  rounds: Number(argument('--rounds') ?? 3),
  reloads: Number(argument('--reloads') ?? 5),
  // Reloads far enough apart that each one's window (up to ~2.5 s with the moves' ramp) ends before
  // the next, so that steady latency is measured between reloads too, not only before the first.
  intervalMs: 4000,
  steadyMs: 3000,
  // The first generation's own warm-up (its first requests run on cold code) is not steady.
  warmUpMs: 1000,
  clients: 30,
  // A client's pause between an answer and its next request (0: none, the machine saturated).
  pauseMs: Number(argument('--pause-ms') ?? 0),
  // Latency by time around the commit (the successor ready and committed), for finding where the tail is.
  bucketMs: 50,
  bucketsFrom: -300,
  buckets: 18,
  // The same stretch after every signal, whatever each build's reload window: builds whose moves
  // take longer are compared without their windows' extra steady requests diluting the tail.
  fixedWindowMs: 3500,
  // Linux: CPU time by process and thread around each commit (bench/cpu-trace.js).
  cpuTrace: process.argv.includes('--cpu-trace'),
  // Linux with autogroups: the niceness of this process's autogroup (the load generator's) for the
  // bench, e.g. -10 (needs CAP_SYS_NICE). A client on another machine keeps its CPU while the service
  // reloads; here it shares the service's, and its waits for a CPU are part of every latency it records.
  clientNice: argument('--client-nice') === undefined ? undefined : Number(argument('--client-nice'))
}

const percentile = (sorted, p) => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
const sorted = (values) => [...values].sort((a, b) => a - b)
const median = (values) => percentile(sorted(values), 50)
const round = (n) => Math.round(n * 100) / 100
// A loop, not push(...values): a run has more samples than a call takes arguments.
const append = (into, values) => { for (const value of values) into.push(value) }

function variantsFromArgs () {
  const nodes = argumentsOf('--node')
  const thisBuild = path.resolve(__dirname, '..')
  // With --node, the runs on the bench's own Node are named with it too.
  const here = nodes.length > 0 ? ` on Node ${process.versions.node}` : ''
  const list = [{ name: `this build${here}`, root: thisBuild, env: {} }]
  const before = argument('--before')
  const beforeRoot = before === undefined ? undefined : path.resolve(before)
  const beforeLabel = argument('--before-label') ?? (beforeRoot && path.basename(beforeRoot))
  if (beforeRoot !== undefined) {
    if (!fs.existsSync(path.join(beforeRoot, 'dist', 'index.js'))) throw new Error(`--before ${beforeRoot}: no dist/index.js there (build it first)`)
    list.unshift({ name: `${beforeLabel}${here}`, root: beforeRoot, env: {} })
  }
  const otherNodes = nodes.map((version) => {
    const node = execFileSync('bash', [path.join(__dirname, '..', '.ci', 'node.sh'), version], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim()
    return { node, on: `on Node ${execFileSync(node, ['--version'], { encoding: 'utf8' }).trim().slice(1)}` }
  })
  for (const { node, on } of otherNodes) {
    // With --before, both builds on every Node.
    if (beforeRoot !== undefined) list.push({ name: `${beforeLabel} ${on}`, root: beforeRoot, env: {}, node })
    list.push({ name: beforeRoot === undefined ? on : `this build ${on}`, root: thisBuild, env: {}, node })
  }
  // Each variant on the bench's Node and on every --node.
  for (const spec of argumentsOf('--variant')) {
    const [name, assignments = ''] = spec.split(':')
    const env = Object.fromEntries(assignments.split(',').filter(Boolean).map((pair) => pair.split(/=(.*)/s).slice(0, 2)))
    list.push({ name: `${name}${here}`, root: thisBuild, env })
    for (const { node, on } of otherNodes) list.push({ name: `${name} ${on}`, root: thisBuild, env, node })
  }
  return list
}

/** One variant, one run: steady load, then K reloads. */
async function runOnce (variant) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-tail-'))
  fs.writeFileSync(path.join(dir, 'VERSION'), '1\n')
  const pidFile = path.join(dir, 'app.pid')
  const ctx = { dir, port: await freePort(), node: variant.node, env: { BENCH_PLUGIN_ROOT: variant.root, BENCH_PID_FILE: pidFile, ...variant.env } }
  const contender = CONFIG.mode === 'supervisor'
    ? contenders.supervisor({ via: 'signal', workers: CONFIG.workers, root: variant.root, pidFile })
    : contenders.standalone()
  const samples = []
  const reloads = []
  let t0
  let trace
  try {
    if (CONFIG.cpuTrace) {
      trace = startCpuTrace()
      await trace.ready
    }
    await contender.start(ctx)
    t0 = performance.now()
    const load = new Load({ host: '127.0.0.1', port: ctx.port }, {
      connections: CONFIG.clients,
      pauseMs: CONFIG.pauseMs,
      keepAlive: true,
      timeoutMs: 10000,
      onResult: (r) => samples.push({ t: r.start - t0, ms: r.end - r.start, ok: r.ok, failed: r.failed, pid: r.pid })
    }).start()
    await sleep(CONFIG.steadyMs)
    for (let i = 0; i < CONFIG.reloads; i++) {
      fs.writeFileSync(path.join(dir, 'VERSION'), `${i + 2}\n`)
      const at = performance.now() - t0
      const timing = await contender.reload(ctx)
      const record = readRecord(pidFile)
      reloads.push({ at, servingMs: timing.servingMs, goneMs: timing.goneMs, durationMs: record?.durationMs, bootMs: record?.bootMs })
      await sleep(Math.max(0, CONFIG.intervalMs - timing.goneMs))
    }
    await sleep(500)
    const stats = await load.stop()
    const cpu = trace === undefined ? undefined : cpuOfRun(await trace.stop(), samples, reloads, performance.timeOrigin + t0)
    return { samples, reloads, cpu, failed: stats.failed, non2xx: stats.non2xx, sent: stats.sent, opened: stats.socketsOpened }
  } finally {
    if (trace !== undefined) await trace.stop()
    await contender.stop().catch((err) => console.error(`stopping: ${err.message}`))
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

function readRecord (pidFile) {
  try { return JSON.parse(fs.readFileSync(`${pidFile}.reload.json`, 'utf8')) } catch { return null }
}

/** When the generations that answered before reload `r` answered their last request before `nextAt`. */
function lastOldAnswer (samples, r, nextAt) {
  const old = new Set(samples.filter((s) => s.t + s.ms < r.at).map((s) => s.pid))
  let last = r.at
  for (const s of samples) if (old.has(s.pid) && s.t < nextAt && s.t + s.ms > last) last = s.t + s.ms
  return last
}

/** The pids that answered requests started between `from` and `to`. */
function pidsBetween (samples, from, to) {
  return new Set(samples.filter((s) => s.ok && s.t >= from && s.t < to).map((s) => s.pid))
}

/** The old generation of reload `r`: whoever answered in the 300 ms before its signal. */
const oldGeneration = (samples, r) => pidsBetween(samples, r.at - 300, r.at)

/** --cpu-trace: one run's CPU time around each commit, by role (bench/cpu-trace.js). */
function cpuOfRun (rows, samples, reloads, t0Wall) {
  const commits = reloads.filter((r) => typeof r.durationMs === 'number').map((r, i) => {
    const oldPids = oldGeneration(samples, r)
    const committed = r.at + r.durationMs
    const newPids = pidsBetween(samples, committed, reloads[i + 1]?.at ?? Infinity)
    for (const pid of oldPids) newPids.delete(pid)
    return { signalAt: t0Wall + r.at, at: t0Wall + committed, oldPids, newPids }
  })
  return { totals: cpuAroundCommits(rows, commits, { benchPid: process.pid, ...CONFIG }), reloads: commits.length }
}

/** One run's latencies: steady (outside every window), in the windows, and by time since the signal. */
function analyse (run) {
  // With --workers, another old worker answers from another pid at once: the window lasts at least
  // until the commit, and until the old generation's last answer (its connections move over a ramp).
  for (const [i, r] of run.reloads.entries()) r.handoffMs = lastOldAnswer(run.samples, r, run.reloads[i + 1]?.at ?? Infinity) - r.at
  const windowEnd = (r) => r.at + Math.max(r.servingMs, r.durationMs ?? 0, r.handoffMs) + 500
  const windows = run.reloads.map((r) => [r.at, windowEnd(r)])
  const ok = run.samples.filter((s) => s.ok)
  const inWindow = (s) => windows.some(([from, to]) => s.t >= from && s.t <= to)
  const steady = ok.filter((s) => s.t >= CONFIG.warmUpMs && !inWindow(s)).map((s) => s.ms)
  const reloading = ok.filter(inWindow).map((s) => s.ms)
  // A request counts by its end (when its latency was felt), relative to each reload's commit
  // (signal + durationMs): while the successor boots, the first 300 ms after, the rest of the window.
  const buckets = Array.from({ length: CONFIG.buckets }, () => [])
  // The same, of the requests the old generation answered.
  const oldBuckets = Array.from({ length: CONFIG.buckets }, () => [])
  const oldPids = run.reloads.map((r) => oldGeneration(run.samples, r))
  const phases = { booting: [], handoff: [], after: [] }
  const fixed = []
  for (const s of ok) {
    const end = s.t + s.ms
    if (run.reloads.some((r) => end >= r.at && end < r.at + CONFIG.fixedWindowMs)) fixed.push(s.ms)
    for (const [i, r] of run.reloads.entries()) {
      if (typeof r.durationMs !== 'number') continue
      const commit = r.at + r.durationMs
      const since = end - commit
      const index = Math.floor((since - CONFIG.bucketsFrom) / CONFIG.bucketMs)
      if (index >= 0 && index < CONFIG.buckets) {
        buckets[index].push(s.ms)
        if (oldPids[i].has(s.pid)) oldBuckets[index].push(s.ms)
      }
      if (end >= r.at && end < commit) phases.booting.push(s.ms)
      else if (since >= 0 && since < 300) phases.handoff.push(s.ms)
      else if (since >= 300 && end <= windowEnd(r)) phases.after.push(s.ms)
    }
  }
  return { steady, reloading, buckets, oldBuckets, phases, fixed }
}

/** --client-nice: sets this process's autogroup niceness; returns what puts it back. */
function prioritiseClient (nice) {
  const file = '/proc/self/autogroup'
  const before = /nice (-?\d+)/.exec(fs.readFileSync(file, 'utf8'))?.[1]
  if (!Number.isInteger(nice) || before === undefined) throw new Error(`--client-nice must be a whole niceness and needs autogroups (${file}); got ${argument('--client-nice')}`)
  fs.writeFileSync(file, String(nice))
  return () => fs.writeFileSync(file, before)
}

async function main () {
  // The apps are spawned detached (sessions, and so autogroups, of their own): only the load generator is changed.
  const restoreClient = CONFIG.clientNice === undefined ? undefined : prioritiseClient(CONFIG.clientNice)
  // Node 22.1+: the generations the plugin starts keep V8's compile cache in NODE_COMPILE_CACHE (by
  // default os.tmpdir()/node-compile-cache). The bench gives them a directory of its own, warm after
  // the first run as a server's would be, and removes it at the end.
  const compileCache = process.env.NODE_COMPILE_CACHE === undefined ? fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-tail-cache-')) : undefined
  if (compileCache !== undefined) process.env.NODE_COMPILE_CACHE = compileCache
  try {
    await measure()
  } finally {
    if (compileCache !== undefined) fs.rmSync(compileCache, { recursive: true, force: true })
    restoreClient?.()
  }
}

async function measure () {
  if (!Number.isFinite(CONFIG.pauseMs) || CONFIG.pauseMs < 0) throw new Error(`--pause-ms must be a number of milliseconds, 0 or more; got ${argument('--pause-ms')}`)
  const variants = variantsFromArgs()
  const results = variants.map((v) => ({ variant: v, steady: [], reloading: [], ratios: [], reloads: [], phases: { booting: [], handoff: [], after: [] }, fixed: [], buckets: Array.from({ length: CONFIG.buckets }, () => []), oldBuckets: Array.from({ length: CONFIG.buckets }, () => []), cpu: {}, cpuReloads: 0, failed: 0, non2xx: 0, sent: 0, opened: 0 }))
  const started = Date.now()
  // One run before the rounds, not counted: it warms this process, the load generator, whose own
  // event loop is part of every latency it records (its p99 delay was 12 ms in its first run, 9 in
  // later ones), so that the first round counted is not an outlier.
  process.stderr.write(`reload-tail: warm-up run, ${results[0].variant.name} (not counted)...\n`)
  await runOnce(results[0].variant).catch((err) => process.stderr.write(`reload-tail: warm-up run: ${err.message}\n`))
  for (let r = 0; r < CONFIG.rounds; r++) {
    // Alternate the order each round: neither build always runs first.
    const order = r % 2 === 0 ? results : [...results].reverse()
    for (const result of order) {
      process.stderr.write(`reload-tail: round ${r + 1}/${CONFIG.rounds}, ${result.variant.name}...\n`)
      let run
      try {
        run = await runOnce(result.variant)
      } catch (err) {
        // A run that broke (the shared machine starved a process past a timeout, say) is counted, not fatal.
        process.stderr.write(`reload-tail: ${result.variant.name}: ${err.message}\n`)
        result.broken = (result.broken ?? 0) + 1
        continue
      }
      const a = analyse(run)
      append(result.steady, a.steady)
      append(result.reloading, a.reloading)
      const steadyP99 = percentile(sorted(a.steady), 99)
      result.ratios.push(steadyP99 > 0 ? percentile(sorted(a.reloading), 99) / steadyP99 : 0)
      result.reloads.push(...run.reloads)
      a.buckets.forEach((b, i) => append(result.buckets[i], b))
      a.oldBuckets.forEach((b, i) => append(result.oldBuckets[i], b))
      if (run.cpu !== undefined) {
        addInto(result.cpu, run.cpu.totals, run.cpu.reloads)
        result.cpuReloads += run.cpu.reloads
      }
      for (const [phase, values] of Object.entries(a.phases)) append(result.phases[phase], values)
      append(result.fixed, a.fixed)
      result.failed += run.failed
      result.non2xx += run.non2xx
      result.sent += run.sent
      result.opened += run.opened
    }
  }
  const summary = results.map((res) => summarise(res))
  const report = { when: new Date().toISOString(), config: CONFIG, node: process.version, cpus: os.cpus().length, durationS: Math.round((Date.now() - started) / 1000), summary }
  const markdown = table(report)
  console.log(markdown)
  console.log('\n' + bucketTable(summary))
  for (const s of summary) {
    if (s.cpu === undefined) continue
    // The steady column: the steady latencies (outside every window), the old generation's alone.
    const latency = { 'p50 latency (ms), every answer': [...s.bucketsP50, s.steadyP50], 'p50 latency (ms), the old generation\'s answers': [...s.oldBucketsP50, s.steadyP50], 'p99 latency (ms)': [...s.buckets, s.steadyP99] }
    console.log('\n' + cpuTable(s.name, s.cpu.byRole, s.cpu.reloads, { ...CONFIG, cpus: os.cpus().length }, latency))
  }
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true })
  fs.writeFileSync(path.join(__dirname, 'results', `reload-tail-${modeKey().replace(/ /g, '-')}.json`), JSON.stringify(report, null, 2) + '\n')
  if (process.argv.includes('--write')) writeSection(`${markdown}\n\n${bucketTable(summary)}`)
}

function summarise (res) {
  const steady = sorted(res.steady)
  const reloading = sorted(res.reloading)
  const fixed = sorted(res.fixed)
  const withBoot = res.reloads.filter((r) => typeof r.bootMs === 'number')
  return {
    name: res.variant.name,
    env: res.variant.env,
    brokenRuns: res.broken ?? 0,
    sent: res.sent,
    failed: res.failed,
    non2xx: res.non2xx,
    opened: res.opened,
    steadyP99: round(percentile(steady, 99)),
    steadyP50: round(percentile(steady, 50)),
    reloadP99: round(percentile(reloading, 99)),
    ratio: round(percentile(reloading, 99) / percentile(steady, 99)),
    roundRatios: res.ratios.map(round),
    reloads: res.reloads.length,
    servingMs: round(median(res.reloads.map((r) => r.servingMs))),
    durationMs: round(median(res.reloads.filter((r) => typeof r.durationMs === 'number').map((r) => r.durationMs))),
    bootMs: withBoot.length === 0 ? null : round(median(withBoot.map((r) => r.bootMs))),
    overheadMs: withBoot.length === 0 ? null : round(median(withBoot.map((r) => r.durationMs - r.bootMs))),
    overheadMaxMs: withBoot.length === 0 ? null : round(Math.max(...withBoot.map((r) => r.durationMs - r.bootMs))),
    perReload: res.reloads.map((r) => ({ servingMs: round(r.servingMs), durationMs: r.durationMs, bootMs: r.bootMs })),
    buckets: res.buckets.map((b) => round(percentile(sorted(b), 99))),
    bucketsP50: res.buckets.map((b) => round(percentile(sorted(b), 50))),
    oldBucketsP50: res.oldBuckets.map((b) => b.length === 0 ? '-' : round(percentile(sorted(b), 50))),
    cpu: res.cpuReloads === 0 ? undefined : { byRole: res.cpu, reloads: res.cpuReloads },
    fixedP99: round(percentile(fixed, 99)),
    fixedRatio: round(percentile(fixed, 99) / percentile(steady, 99)),
    phases: Object.fromEntries(Object.entries(res.phases).map(([phase, values]) => [phase, round(percentile(sorted(values), 99))]))
  }
}

function table (report) {
  const c = report.config
  const lines = []
  lines.push(`| build (${c.mode}${c.workers > 1 ? `, ${c.workers} workers` : ''}, ${c.clients} keep-alive clients${c.pauseMs > 0 ? ` pausing ${c.pauseMs} ms between requests` : ''}${c.clientNice !== undefined ? ` at autogroup niceness ${c.clientNice}` : ''}, ${c.reloads} reloads × ${c.rounds} interleaved rounds) | requests | failed | connections opened | p99 steady → reload window (ms) | p99 ratio (pooled) | p99 ratio per round, in order | signal → new pid answers, median (ms) | signal → committed (durationMs), median | successor's own boot (bootMs), median | added by the reload (durationMs − bootMs), median / max |`)
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const s of report.summary) {
    lines.push(`| ${s.name}${s.brokenRuns > 0 ? ` (${s.brokenRuns} run(s) broke, left out)` : ''} | ${s.sent} | ${s.failed + s.non2xx} | ${s.opened} | ${s.steadyP99} → ${s.reloadP99} | ${s.ratio} | ${s.roundRatios.join(', ')} | ${s.servingMs} | ${s.durationMs} | ${s.bootMs ?? '- (not reported)'} | ${s.overheadMs === null ? '-' : `${s.overheadMs} / ${s.overheadMaxMs}`} |`)
  }
  lines.push('')
  lines.push(`Node ${report.node}, ${report.cpus} CPUs, ${report.when}, ${report.durationS} s.`)
  return lines.join('\n')
}

function bucketTable (summary) {
  const header = Array.from({ length: CONFIG.buckets }, (_, i) => `${CONFIG.bucketsFrom + i * CONFIG.bucketMs}`)
  const lines = [
    `| build | p99 steady | p99 while the successor boots (signal → commit) | p99 in the 300 ms after the commit | p99 in the rest of the window | p99 in the ${CONFIG.fixedWindowMs / 1000} s from each signal (ratio to steady) |`,
    '|---|---|---|---|---|---|',
    ...summary.map((s) => `| ${s.name} | ${s.steadyP99} | ${s.phases.booting} | ${s.phases.handoff} | ${s.phases.after} | ${s.fixedP99} (${s.fixedRatio}) |`),
    '',
    `p99 (ms) of the requests that ended in each ${CONFIG.bucketMs} ms around the commit (ms from the commit):`,
    `| build | ${header.join(' | ')} |`,
    `|---|${header.map(() => '---').join('|')}|`
  ]
  for (const s of summary) lines.push(`| ${s.name} | ${s.buckets.join(' | ')} |`)
  return lines.join('\n')
}

/** Rewrites this mode's section of BENCHMARKS.md (below the marker a full bench run keeps), or adds it. */
function writeSection (markdown) {
  const text = fs.readFileSync(BENCHMARKS, 'utf8')
  const [start, end] = [startMarker(), endMarker()]
  const section = `${start}\n${markdown}\n${end}`
  const from = text.indexOf(start)
  const to = text.indexOf(end)
  let next
  if (from !== -1 && to !== -1) next = text.slice(0, from) + section + text.slice(to + end.length)
  else if (text.includes(HEADING)) next = text.replace(HEADING, `${HEADING}\n\n${section}`)
  else if (text.includes(KEPT)) next = text.replace(KEPT, `${KEPT}\n\n${HEADING}\n\n${section}`)
  else next = `${text}\n${HEADING}\n\n${section}\n`
  fs.writeFileSync(BENCHMARKS, next)
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

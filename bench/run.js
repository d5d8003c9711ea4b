'use strict'
// `npm run bench` (20 reloads every 2 s), `npm run bench:quick` (3 reloads) and `npm run bench:smoke`
// (CI: every scenario's code path once, as briefly as it runs, about a minute): every contender runs
// the same service under keep-alive and connection-per-request load while it is reloaded; every
// request's outcome is recorded by our own client. Prints a table, writes JSON and an SVG chart to
// bench/results/. Timings never fail the run; only a broken bench does.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const autocannon = require('autocannon')
const { Load } = require('../tools/load-recorder')
const contenders = require('./contenders')
const { renderChart } = require('./chart')
const { cpuCost, costSection, costTarget } = require('./cost')
const { writeBenchmarksMarkdown } = require('./report')
const { longLivedScenario, longLivedTable } = require('./long-lived')
const { http2Scenarios, http2Table, writeHttp2Section } = require('./http2')
const { freePort } = require('../tools/free-port')

// --smoke: a test of the bench's code, not a measurement (its numbers mean nothing): one reload per
// scenario, short windows, few clients, a short drainTimeout and probation for the project's app.
const SMOKE = process.argv.includes('--smoke')
const QUICK = SMOKE || process.argv.includes('--quick')
if (SMOKE) {
  // Read by bench/app.js in every app process the contenders start (they inherit this environment).
  process.env.BENCH_DRAIN_TIMEOUT = '2000'
  process.env.BENCH_PROBATION = '300'
}
// `--workers K`: the multi-process contenders' size (supervisor --workers, PM2 -i, cluster), 2 by default.
const WORKERS = Number(process.argv[process.argv.indexOf('--workers') + 1]) > 0 && process.argv.includes('--workers') ? Number(process.argv[process.argv.indexOf('--workers') + 1]) : 2
const CONFIG = SMOKE
  ? { reloads: 1, intervalMs: 300, steadyMs: 400, throughputSeconds: 1, warmupSeconds: 0, throughputRounds: 1, connections: { keepAlive: 4, perRequest: 2 }, webSockets: 10, bootRounds: 1, tailMs: 100 }
  : QUICK
  ? { reloads: 3, intervalMs: 1000, steadyMs: 1000, throughputSeconds: 1, throughputRounds: 1, warmupSeconds: 1, connections: { keepAlive: 20, perRequest: 10 }, webSockets: 50, bootRounds: 3, tailMs: 500 }
  : { reloads: 20, intervalMs: 2000, steadyMs: 3000, throughputSeconds: 5, throughputRounds: 4, warmupSeconds: 1, connections: { keepAlive: 30, perRequest: 10 }, webSockets: 100, bootRounds: 3, tailMs: 500 }
// `--long-lived-only`: the WebSocket scenario alone (prints its table, writes nothing).
const LONG_LIVED_ONLY = process.argv.includes('--long-lived-only')
const RESULTS = path.join(__dirname, 'results')
const { sleep } = contenders

async function context () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-bench-'))
  fs.writeFileSync(path.join(dir, 'VERSION'), '1\n')
  // This project's generations (or its supervisor) write each reload's result (durationMs, bootMs) beside this pid file.
  const pidFile = path.join(dir, 'app.pid')
  return { dir, port: await freePort(), pidFile, env: { BENCH_PID_FILE: pidFile } }
}

/** This reload's own result from the reload record, if it was written since `since` (ms since the epoch). */
function reloadRecord (ctx, since) {
  try {
    const record = JSON.parse(fs.readFileSync(`${ctx.pidFile}.reload.json`, 'utf8'))
    return record.finishedAt >= since ? record : undefined
  } catch {
    return undefined
  }
}

function percentile (sorted, p) {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

function latencyStats (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted[sorted.length - 1] || 0), count: sorted.length }
}

const round = (n) => Math.round(n * 100) / 100

/** One contender under one kind of load, reloaded CONFIG.reloads times. */
async function scenario (makeContender, loadKind) {
  const contender = makeContender()
  const ctx = await context()
  const samples = []
  const windows = []
  const rss = { daemon: [], apps: [] }
  let t0
  try {
    await contender.start(ctx)
    t0 = performance.now()
    const sampler = setInterval(() => {
      const daemon = contender.daemonPid()
      if (daemon) rss.daemon.push(contenders.rssMb(daemon))
      rss.apps.push(contenders.appPids().reduce((sum, pid) => sum + contenders.rssMb(pid), 0))
    }, 100)
    const keepAlive = loadKind === 'keep-alive'
    const load = new Load({ host: '127.0.0.1', port: ctx.port }, {
      connections: keepAlive ? CONFIG.connections.keepAlive : CONFIG.connections.perRequest,
      keepAlive,
      timeoutMs: 10000,
      onResult: (r) => samples.push({ t: r.start - t0, ms: r.end - r.start, ok: r.ok, failed: r.failed })
    }).start()
    await sleep(CONFIG.steadyMs)
    const reloads = []
    for (let i = 0; i < CONFIG.reloads; i++) {
      fs.writeFileSync(path.join(ctx.dir, 'VERSION'), `${i + 2}\n`)
      const at = performance.now() - t0
      const signalledAt = Date.now()
      const timing = await contender.reload(ctx)
      // Read once the old generation is gone: by then the record of this reload is written.
      const record = contender.project ? reloadRecord(ctx, signalledAt) : undefined
      reloads.push({ at: round(at), servingMs: round(timing.servingMs), goneMs: round(timing.goneMs), durationMs: record?.durationMs, bootMs: record?.bootMs })
      windows.push([at, at + timing.servingMs + 500])
      await sleep(Math.max(0, CONFIG.intervalMs - timing.goneMs))
    }
    await sleep(CONFIG.tailMs)
    const stats = await load.stop()
    clearInterval(sampler)
    const inWindow = (s) => windows.some(([from, to]) => s.t >= from && s.t <= to)
    const okSamples = samples.filter((s) => s.ok)
    const steady = latencyStats(okSamples.filter((s) => !inWindow(s)).map((s) => s.ms))
    const reloading = latencyStats(okSamples.filter(inWindow).map((s) => s.ms))
    const serving = reloads.map((r) => r.servingMs).sort((a, b) => a - b)
    const steadyDaemon = rss.daemon.slice(0, Math.max(1, Math.floor(CONFIG.steadyMs / 100)))
    return {
      contender: contender.name,
      project: contender.project,
      load: loadKind,
      sent: stats.sent,
      ok: stats.ok,
      failed: stats.failed,
      non2xx: stats.non2xx,
      errors: stats.errors,
      socketsOpened: stats.socketsOpened,
      connections: keepAlive ? CONFIG.connections.keepAlive : CONFIG.connections.perRequest,
      versionsServed: Object.keys(stats.versions).length,
      latency: { steady, reloading, p99Ratio: steady.p99 > 0 ? round(reloading.p99 / steady.p99) : null },
      reloads,
      reloadMedianMs: round(percentile(serving, 50)),
      // What the reload added to the successor's own boot, both measured under this load (ours only).
      addedMs: addedByReload(reloads),
      rss: {
        daemonSteadyMb: rss.daemon.length ? round(Math.max(...steadyDaemon)) : null,
        daemonPeakMb: rss.daemon.length ? round(Math.max(...rss.daemon)) : null,
        appsPeakMb: round(Math.max(0, ...rss.apps))
      },
      timeline: timeline(samples, windows)
    }
  } finally {
    await contender.stop().catch((err) => console.error(`stopping ${contender.name}: ${err.message}`))
    fs.rmSync(ctx.dir, { recursive: true, force: true })
  }
}

/** Median of durationMs − bootMs over the reloads that reported both, or null. */
function addedByReload (reloads) {
  const added = reloads.filter((r) => typeof r.bootMs === 'number' && typeof r.durationMs === 'number').map((r) => r.durationMs - r.bootMs).sort((a, b) => a - b)
  return added.length === 0 ? null : round(percentile(added, 50))
}

/** Requests/s, failures and p99 per 250 ms, for the chart. */
function timeline (samples, windows) {
  const bucketMs = 250
  const buckets = new Map()
  for (const s of samples) {
    const key = Math.floor(s.t / bucketMs)
    if (!buckets.has(key)) buckets.set(key, { ok: 0, failed: 0, ms: [] })
    const b = buckets.get(key)
    if (s.ok) { b.ok++; b.ms.push(s.ms) } else b.failed++
  }
  const points = [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([key, b]) => ({
    t: round((key * bucketMs) / 1000),
    rps: Math.round((b.ok * 1000) / bucketMs),
    failed: b.failed,
    p99: round(percentile(b.ms.sort((x, y) => x - y), 99))
  }))
  return { bucketMs, points, reloads: windows.map(([from]) => round(from / 1000)) }
}

/** The app's own boot time: spawn to first 200, fresh processes, no load. */
async function bootTime () {
  const times = []
  for (let i = 0; i < CONFIG.bootRounds; i++) {
    const ctx = await context()
    const started = performance.now()
    const child = contenders.spawnApp(ctx, {})
    await contenders.serving(ctx.port)
    times.push(performance.now() - started)
    process.kill(child.pid, 'SIGKILL')
    await contenders.waitGone(child.pid)
    fs.rmSync(ctx.dir, { recursive: true, force: true })
  }
  return round(times.sort((a, b) => a - b)[Math.floor(times.length / 2)])
}

/** Steady throughput with autocannon (fine here: no reloads), as a ratio to bare Fastify. */
async function throughput () {
  const runs = [
    ['bare Fastify', contenders.plainRestart],
    ['Fastify + plugin', () => contenders.standalone()],
    ['supervisor + plugin', () => contenders.supervisor()],
    ['PM2 cluster, 1 instance', () => contenders.pm2(1)]
  ]
  // The machine is shared and its speed drifts: interleave the contenders over several rounds, each
  // round starting at the next contender (so that none always runs first, or always right after
  // PM2's daemon was killed), and take each contender's ratio to bare Fastify within a round. The
  // median of those is the result, shown with its spread (one round in --quick, a smoke test that
  // must stay within a few minutes).
  const rounds = CONFIG.throughputRounds
  const perRound = []
  const errors = runs.map(() => 0)
  for (let r = 0; r < rounds; r++) {
    const rps = []
    for (let k = 0; k < runs.length; k++) {
      const i = (r + k) % runs.length
      const contender = runs[i][1]()
      const ctx = await context()
      try {
        await contender.start(ctx)
        if (CONFIG.warmupSeconds > 0) await autocannon({ url: `http://127.0.0.1:${ctx.port}/`, connections: 50, duration: CONFIG.warmupSeconds })
        const result = await autocannon({ url: `http://127.0.0.1:${ctx.port}/`, connections: 50, duration: CONFIG.throughputSeconds })
        rps[i] = result.requests.average
        errors[i] += result.errors + result.non2xx
      } finally {
        await contender.stop().catch(() => {})
        fs.rmSync(ctx.dir, { recursive: true, force: true })
      }
    }
    perRound.push(rps)
  }
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
  return runs.map(([name], i) => {
    const ratios = perRound.map((rps) => rps[i] / rps[0])
    return {
      name,
      requestsPerSecond: Math.round(median(perRound.map((rps) => rps[i]))),
      rounds,
      errors: errors[i],
      ratioToBare: round(median(ratios)),
      ratioLowest: round(Math.min(...ratios)),
      ratioHighest: round(Math.max(...ratios))
    }
  })
}

function table (results, boot, speed, cost, longLived = []) {
  const lines = []
  lines.push(`| contender | load | requests | failed | non-2xx | connections opened / clients | p99 steady → reload (ms) | p99 ratio | reload median (ms) | overhead over boot (ms)¹ | daemon RSS steady / peak (MB) | app processes peak RSS (MB) |`)
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of results) {
    // Ours: what the reload added to the successor's own boot under the same load; others: against the idle boot.
    const overhead = r.addedMs ?? round(r.reloadMedianMs - boot)
    const mark = r.project && r.addedMs !== null && r.addedMs !== undefined ? (r.addedMs >= 50 ? ' ✗' : '') : (r.project ? '' : '²')
    lines.push(`| ${r.contender} | ${r.load} | ${r.sent} | ${r.failed}${r.project && r.failed > 0 ? ' ✗' : ''} | ${r.non2xx} | ${r.socketsOpened} / ${r.connections} | ${r.latency.steady.p99} → ${r.latency.reloading.p99} | ${r.latency.p99Ratio ?? '-'}${r.project && r.latency.p99Ratio > 1.5 ? ' ✗' : ''} | ${r.reloadMedianMs} | ${overhead}${mark} | ${r.rss.daemonSteadyMb ?? '-'} / ${r.rss.daemonPeakMb ?? '-'} | ${r.rss.appsPeakMb} |`)
  }
  lines.push('')
  lines.push(`¹ This project: median of each reload's durationMs − bootMs (signal → successor committed, minus the successor's own spawn → listen(), both under the load; bench/reload-tail.js has the details). ² Others: reload median − the app's boot time measured on an idle machine (spawn → first 200, median of 3): ${boot} ms; that difference is mostly CPU contention.`)
  lines.push('')
  const rounds = speed[0]?.rounds ?? CONFIG.throughputRounds
  lines.push(`| steady throughput (autocannon, 50 connections, ${rounds > 1 ? `median of ${rounds} interleaved rounds` : 'one round'}) | requests/s | ratio to bare Fastify (median of the rounds' own) | lowest – highest round |`)
  lines.push('|---|---|---|---|')
  for (const s of speed) lines.push(`| ${s.name} | ${s.requestsPerSecond} | ${s.ratioToBare}${s.name === 'Fastify + plugin' && s.ratioToBare < 0.98 ? ' ✗ (target 0.98)' : ''} | ${s.ratioLowest} – ${s.ratioHighest} |`)
  lines.push('')
  lines.push(costSection(cost))
  if (longLived.length > 0) {
    lines.push('')
    lines.push(`Long-lived connections: WebSocket clients (@fastify/websocket) that reconnect as soon as they are closed, over ${CONFIG.reloads} reloads.`)
    lines.push('')
    lines.push(longLivedTable(longLived))
  }
  return lines.join('\n')
}

function targets (results, boot, speed, cost, longLived, http2) {
  const ours = results.filter((r) => r.project)
  const pm2Daemon = Math.max(0, ...results.filter((r) => /PM2/.test(r.contender)).map((r) => r.rss.daemonPeakMb || 0))
  const supervisorRss = Math.max(0, ...results.filter((r) => /supervisor/.test(r.contender)).map((r) => r.rss.daemonPeakMb || 0))
  const plugin = speed.find((s) => s.name === 'Fastify + plugin')
  return [
    ['0 failed requests for this project in every scenario', ours.every((r) => r.failed === 0 && r.non2xx === 0)],
    // What the reload adds to the successor's own boot (durationMs − bootMs, measured inside, so the
    // `reload` command's own Node start-up is not in it): by signal, and by the command.
    ['reload overhead over the successor\'s own boot < 50 ms, reload by signal', ours.filter((r) => !/reload command/.test(r.contender)).every((r) => r.addedMs !== null && r.addedMs < 50)],
    ['reload overhead over the successor\'s own boot < 50 ms, reload by the `reload` command', ours.filter((r) => /reload command/.test(r.contender)).every((r) => r.addedMs !== null && r.addedMs < 50)],
    ['p99 in the reload window ≤ 1.5x steady', ours.every((r) => (r.latency.p99Ratio ?? 0) <= 1.5)],
    ['plugin throughput ≥ 0.98 of bare Fastify (requests/s, autocannon; noisy here)', plugin !== undefined && plugin.ratioToBare >= 0.98],
    costTarget(cost),
    [`supervisor RSS (${supervisorRss} MB) below the PM2 daemon's (${pm2Daemon} MB)`, supervisorRss > 0 && supervisorRss < pm2Daemon],
    ...longLivedTargets(longLived),
    ['HTTP/2: 0 failed streams for this project, with every client that ran (none retries a refused stream)', http2.rows.filter((r) => r.project && !r.missing).every((r) => r.failed === 0)]
  ]
}

function longLivedTargets (longLived) {
  const ours = longLived.filter((r) => r.project)
  return [
    ['WebSockets: 0 abnormal closes (1006) for this project, every close 1001', ours.every((r) => r.abnormal === 0 && r.byCode[1001] === r.closes)],
    ['WebSockets: reconnect burst ≤ 20% of the clients in any 100 ms, for this project', ours.every((r) => r.peakReconnectsPer100ms <= r.clients * 0.2)]
  ]
}

/** The Markdown tables, also used to write BENCHMARKS.md. */
module.exports = { table }

const longLivedMakers = [
  () => contenders.standalone(),
  () => contenders.supervisor({ via: 'signal' }),
  () => contenders.pm2(1),
  contenders.plainRestart
]

async function longLivedScenarios () {
  const out = []
  // --quick is a smoke test of the bench's code: one contender runs the scenario.
  for (const make of QUICK ? longLivedMakers.slice(0, 1) : longLivedMakers) {
    process.stderr.write(`bench: ${make().name}, ${CONFIG.webSockets} WebSocket clients, ${CONFIG.reloads} reloads...\n`)
    out.push(await longLivedScenario(make, { context, config: CONFIG }))
  }
  return out
}

async function main () {
  const started = Date.now()
  if (LONG_LIVED_ONLY) {
    const longLived = await longLivedScenarios()
    console.log(longLivedTable(longLived))
    for (const [what, met] of longLivedTargets(longLived)) console.log(`  ${met ? '✓' : '✗ missed:'} ${what}`)
    return
  }
  const makers = [
    () => contenders.standalone({ handoff: false }),
    () => contenders.standalone(),
    () => contenders.supervisor({ via: 'command' }),
    () => contenders.supervisor({ via: 'signal' }),
    () => contenders.supervisor({ via: 'command', workers: WORKERS }),
    () => contenders.pm2(1),
    () => contenders.pm2(WORKERS),
    () => contenders.nodeCluster(WORKERS),
    contenders.plainRestart
  ]
  const results = []
  for (const [index, make] of makers.entries()) {
    // --smoke: PM2 with WORKERS instances runs the same bench code as PM2 with one, at twice the cost.
    if (SMOKE && index === 6) continue
    // --quick: every contender once (keep-alive), and one of ours under both loads.
    for (const kind of QUICK && index !== 1 ? ['keep-alive'] : ['keep-alive', 'per-request']) {
      const name = make().name
      process.stderr.write(`bench: ${name}, ${kind} load, ${CONFIG.reloads} reloads...\n`)
      results.push(await scenario(make, kind))
    }
  }
  const longLived = await longLivedScenarios()
  const http2 = await http2Scenarios({ quick: QUICK, smoke: SMOKE, log: (line) => process.stderr.write(line + '\n') })
  process.stderr.write(`bench: the app's own boot time, ${CONFIG.bootRounds} run${CONFIG.bootRounds > 1 ? 's' : ''}...\n`)
  const boot = await bootTime()
  process.stderr.write(`bench: steady throughput (autocannon), ${CONFIG.throughputRounds} round${CONFIG.throughputRounds > 1 ? 's' : ''}...\n`)
  const speed = await throughput()
  // --smoke: one round of short windows (the measurement's code, no result).
  const cost = await cpuCost({ quick: QUICK, config: SMOKE ? { rounds: 1, idleMs: 200, warmupMs: 300, windowMs: 700 } : {}, log: (line) => process.stderr.write(line + '\n') })
  const checks = targets(results, boot, speed, cost, longLived, http2)
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGb: round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` }
  const report = { when: new Date().toISOString(), quick: QUICK, smoke: SMOKE, config: CONFIG, machine, bootMs: boot, throughput: speed, cost, targets: checks.map(([what, met]) => ({ what, met })), results, longLived, http2, durationS: Math.round((Date.now() - started) / 1000) }
  fs.mkdirSync(RESULTS, { recursive: true })
  const base = SMOKE ? 'smoke' : QUICK ? 'quick' : 'latest'
  fs.writeFileSync(path.join(RESULTS, `${base}.json`), JSON.stringify(report, null, 2) + '\n')
  fs.writeFileSync(path.join(RESULTS, `${base}.svg`), await renderChart(report))
  const markdown = table(results, boot, speed, cost, longLived)
  if (!QUICK) {
    writeBenchmarksMarkdown(report, markdown)
    writeHttp2Section(http2)
  }
  console.log(markdown)
  console.log('\n' + http2Table(http2))
  console.log('\nTargets (DESIGN.md §5):')
  for (const [what, met] of checks) console.log(`  ${met ? '✓' : '✗ missed:'} ${what}`)
  console.log(`\n${machine.cpus} CPUs, ${machine.memoryGb} GB, Node ${machine.node}; ${report.durationS} s. Results: bench/results/${base}.json, chart: bench/results/${base}.svg`)
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

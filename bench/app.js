'use strict'
// The service every contender runs: the same small Fastify app. It reads VERSION at boot, so a
// reload onto new code is visible in every answer. Under PM2 it says ready (wait_ready) and shuts
// down on SIGINT as PM2 expects; plain, it shuts down on SIGTERM; with BENCH_PLUGIN=1 the plugin
// does all of that itself. BENCH_WEBSOCKET=1 adds a WebSocket route (@fastify/websocket);
// BENCH_HTTP2=1 serves HTTP/2 without TLS (h2c, what h2load and curl --http2-prior-knowledge speak).
const fs = require('node:fs')
const path = require('node:path')
const { PerformanceObserver, constants } = require('node:perf_hooks')
const Fastify = require('fastify')

const version = fs.readFileSync(path.resolve('VERSION'), 'utf8').trim()
const app = Fastify({ logger: false, http2: process.env.BENCH_HTTP2 === '1' })
if (process.env.BENCH_PLUGIN === '1') {
  // BENCH_PLUGIN_ROOT: another build of the plugin (bench/cost.js measures main's beside this one).
  app.register(require(process.env.BENCH_PLUGIN_ROOT || '..'), {
    idleGrace: 500,
    // bench/run.js --smoke (a test of the bench's code) shortens the drain and the probation.
    drainTimeout: Number(process.env.BENCH_DRAIN_TIMEOUT || 10000),
    ...(process.env.BENCH_BOOT_NICE ? { bootNice: Number(process.env.BENCH_BOOT_NICE) } : {}),
    ...(process.env.BENCH_PROBATION ? { probation: Number(process.env.BENCH_PROBATION) } : {}),
    // The plugin's defaults, unless the bench asks for the ordinary drain...
    connectionHandoff: process.env.BENCH_HANDOFF !== '0',
    // bench/reload-tail.js reads each reload's result (durationMs, bootMs) from the reload record beside it.
    ...(process.env.BENCH_PID_FILE ? { pidFile: process.env.BENCH_PID_FILE } : {}),
    // ...or for @fastify/under-pressure registered without thresholds (what the defaults did up to
    // 0.1.0), to tell what that costs.
    ...(process.env.BENCH_UNDER_PRESSURE === '{}' ? { underPressure: {} } : {}),
    // ...or with under-pressure off, so that an older build whose defaults had it measures its
    // per-request work alone (bench/instructions.js).
    ...(process.env.BENCH_UNDER_PRESSURE === 'false' ? { underPressure: false } : {})
  })
}
// bench/cost.js asks for the CPU time this process has used (all threads, GC included), over IPC.
if (process.env.BENCH_CPU === '1') {
  process.on('message', (message) => {
    if (message === 'cpu') {
      const used = process.cpuUsage()
      process.send({ cpuMicros: used.user + used.system })
    }
  })
}
// BENCH_STALL_LOG=<dir>: a diagnostic, this process's event-loop stalls over 5 ms and the moments it
// started draining and serving, with wall-clock times, one JSON line each in <dir>/stall-<pid>.jsonl.
if (process.env.BENCH_STALL_LOG) {
  // Written asynchronously: a synchronous write would be a stall of its own, in the moment measured.
  const log = (record) => fs.appendFile(path.join(process.env.BENCH_STALL_LOG, `stall-${process.pid}.jsonl`), JSON.stringify(record) + '\n', () => {})
  let last = performance.now()
  setInterval(() => {
    const now = performance.now()
    if (now - last > 5) log({ t: performance.timeOrigin + last, ms: now - last })
    last = now
  }, 2).unref()
  log({ t: performance.timeOrigin, event: 'start' })
  // Major and incremental collections, and scavenges over 2 ms: when they fall around a commit.
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.detail.kind !== constants.NODE_PERFORMANCE_GC_MINOR || entry.duration > 2) log({ t: performance.timeOrigin + entry.startTime, gc: entry.detail.kind, ms: entry.duration })
    }
  }).observe({ entryTypes: ['gc'] })
  app.addHook('onReady', async () => {
    for (const event of ['draining', 'serving']) app.hotReload?.on(event, () => log({ t: performance.timeOrigin + performance.now(), event }))
  })
}
app.get('/', async () => ({ version, pid: process.pid }))
if (process.env.BENCH_WEBSOCKET === '1') {
  // The long-lived scenario: each WebSocket is greeted by the generation that took it.
  app.register(require('@fastify/websocket'))
  app.register(async (scope) => {
    scope.get('/ws', { websocket: true }, (socket) => socket.send(JSON.stringify({ version, pid: process.pid })))
  })
}

// BENCH_WARMUP=N: an experiment, N requests run through Fastify (inject) before the app listens.
async function warmUp (count) {
  for (let i = 0; i < count; i++) await app.inject('/')
}

warmUp(Number(process.env.BENCH_WARMUP || 0)).then(() => app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })).then(() => {
  if (process.env.pm_id !== undefined && typeof process.send === 'function') process.send('ready')
})
if (process.env.BENCH_PLUGIN !== '1') {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => { app.close().then(() => process.exit(0)) })
  }
}

'use strict'
// HTTP/2 over reloads (h2c, `bench/app.js` with BENCH_HTTP2=1), beside PM2 and a plain restart, with
// three clients that do not retry a refused stream:
// - our own client (tools/h2-load.js): sessions of 10 concurrent request loops, a new session after
//   a GOAWAY, every stream's outcome and time recorded: failed streams and the throughput dip (every
//   100 ms inside the reload windows against the steady median);
// - `curl --http2-prior-knowledge` in loops, one request per curl (curl 7.88 fails a second transfer on
//   a reused h2c connection with exit 16 even against bare Fastify, so a curl sends one);
// - `h2load -c10 -m10 -D 3`, one run across each reload, and one run without a reload to compare its
//   totals with (h2load ends a client at its first GOAWAY: it never opens a second session).
// curl and h2load are used when installed (not npm packages); their rows say when they are not.
//
//   node bench/http2.js [--quick] [--write]     (npm run bench:http2)
//
// --write puts the table into BENCHMARKS.md between its HTTP/2 markers (added below the kept-sections
// marker the first time), leaving the rest alone.
const { execFile, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const contenders = require('./contenders')
const { h2Client } = require('../tools/h2-load')
const { freePort } = require('../tools/free-port')

const QUICK = process.argv.includes('--quick')
const CONFIGS = {
  full: { reloads: 10, intervalMs: 2000, steadyMs: 3000, clients: 4, loops: 10, curlLoops: 4, h2loadRuns: 5, h2loadSeconds: 3, h2loadReloadAfterMs: 1000 },
  quick: { reloads: 2, intervalMs: 1000, steadyMs: 1000, clients: 2, loops: 10, curlLoops: 2, h2loadRuns: 1, h2loadSeconds: 3, h2loadReloadAfterMs: 1000 },
  // bench/run.js --smoke: every client's code path once, as briefly as it runs (no result).
  smoke: { reloads: 1, intervalMs: 200, steadyMs: 300, clients: 2, loops: 4, curlLoops: 1, h2loadRuns: 1, h2loadSeconds: 1, h2loadReloadAfterMs: 300 }
}
let CONFIG = QUICK ? CONFIGS.quick : CONFIGS.full
const BUCKET_MS = 100
const CURL_BATCH = 1
const BENCHMARKS = path.join(__dirname, '..', 'BENCHMARKS.md')
const START = '<!-- http2: written by bench/http2.js -->'
const END = '<!-- end of http2 -->'
const { sleep } = contenders
const round = (n) => Math.round(n * 100) / 100

function installed (command) {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0
}

async function context () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-bench-h2-'))
  fs.writeFileSync(path.join(dir, 'VERSION'), '1\n')
  return { dir, port: await freePort(), env: { BENCH_HTTP2: '1' } }
}

/** Runs `contender` on a fresh context, calls `body(contender, ctx, reload)`, and ends everything. */
async function withContender (makeContender, body) {
  const contender = makeContender()
  const ctx = await context()
  let version = 1
  const reload = () => {
    fs.writeFileSync(path.join(ctx.dir, 'VERSION'), `${++version}\n`)
    return contender.reload(ctx)
  }
  try {
    await contender.start(ctx)
    return await body(contender, ctx, reload)
  } finally {
    await contender.stop().catch((err) => console.error(`stopping ${contender.name}: ${err.message}`))
    fs.rmSync(ctx.dir, { recursive: true, force: true })
  }
}

/** Our client: failed streams, sessions, and throughput per 100 ms inside the reload windows. */
async function ownClient (contender, ctx, reload) {
  const samples = []
  const t0 = performance.now()
  const origin = `http://127.0.0.1:${ctx.port}`
  const clients = Array.from({ length: CONFIG.clients }, () => h2Client(origin, {
    loops: CONFIG.loops,
    onResult: (r) => samples.push({ t: r.end - t0, ok: r.ok })
  }))
  await sleep(CONFIG.steadyMs)
  const windows = []
  for (let i = 0; i < CONFIG.reloads; i++) {
    const at = performance.now() - t0
    const timing = await reload()
    windows.push([at, at + timing.servingMs + 500])
    await sleep(Math.max(0, CONFIG.intervalMs - timing.goneMs))
  }
  await sleep(500)
  const all = await Promise.all(clients.map((client) => client.stop()))
  const end = performance.now() - t0
  const buckets = new Map()
  for (const s of samples) if (s.ok) buckets.set(Math.floor(s.t / BUCKET_MS), (buckets.get(Math.floor(s.t / BUCKET_MS)) || 0) + 1)
  // Whole buckets only: the first second (sessions opening) and the last bucket are left out.
  const inWindow = (key) => windows.some(([from, to]) => (key + 1) * BUCKET_MS > from && key * BUCKET_MS < to)
  const keys = []
  for (let key = Math.ceil(1000 / BUCKET_MS); (key + 1) * BUCKET_MS < end; key++) keys.push(key)
  const steady = median(keys.filter((k) => !inWindow(k)).map((k) => buckets.get(k) || 0))
  const reloading = keys.filter(inWindow).map((k) => buckets.get(k) || 0)
  const errors = {}
  for (const stats of all) for (const [code, n] of Object.entries(stats.errors)) errors[code] = (errors[code] || 0) + n
  return {
    client: `node:http2, ${CONFIG.clients} sessions × ${CONFIG.loops} streams`,
    streams: all.reduce((sum, s) => sum + s.ok + s.failed, 0),
    failed: all.reduce((sum, s) => sum + s.failed, 0),
    errors,
    connections: `${all.reduce((sum, s) => sum + s.sessions, 0)} / ${CONFIG.clients}`,
    throughput: steady > 0 && reloading.length > 0
      ? `${round(mean(reloading) / steady)} mean, ${round(Math.min(...reloading) / steady)} lowest 100 ms`
      : '-'
  }
}

/** `curl --http2-prior-knowledge` loops: each curl sends CURL_BATCH requests on a connection of its own. */
async function curlLoops (contender, ctx, reload) {
  if (!installed('curl')) return { client: 'curl --http2-prior-knowledge', missing: 'curl is not installed' }
  const url = `http://127.0.0.1:${ctx.port}/`
  const tally = { streams: 0, failed: 0, curls: 0, errors: {} }
  let running = true
  const loop = async () => {
    while (running) {
      tally.curls++
      const out = await new Promise((resolve) => {
        execFile('curl', ['--http2-prior-knowledge', '-s', '-o', '/dev/null', '-w', '%{http_code}\\n', '--max-time', '10', ...Array(CURL_BATCH).fill(url)],
          { timeout: 20000 }, (err, stdout) => resolve({ code: err ? (err.code ?? err.signal) : 0, stdout }))
      })
      const statuses = out.stdout.split('\n').filter(Boolean)
      const ok = statuses.filter((s) => s === '200').length
      tally.streams += CURL_BATCH
      tally.failed += CURL_BATCH - ok
      if (CURL_BATCH - ok > 0) tally.errors[`curl exit ${out.code}`] = (tally.errors[`curl exit ${out.code}`] || 0) + CURL_BATCH - ok
    }
  }
  const loops = Array.from({ length: CONFIG.curlLoops }, loop)
  await sleep(CONFIG.steadyMs)
  for (let i = 0; i < CONFIG.reloads; i++) {
    const timing = await reload()
    await sleep(Math.max(0, CONFIG.intervalMs - timing.goneMs))
  }
  running = false
  await Promise.all(loops)
  return { client: `curl --http2-prior-knowledge, ${CONFIG.curlLoops} loops, ${CURL_BATCH} request per curl`, streams: tally.streams, failed: tally.failed, errors: tally.errors, connections: `${tally.curls} curls`, throughput: '-' }
}

function h2load (url, seconds) {
  return new Promise((resolve) => {
    execFile('h2load', ['-c10', '-m10', '-D', String(seconds), url], { timeout: (seconds + 20) * 1000 }, (err, stdout) => {
      const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout)
      if (!m) return resolve({ broken: err ? err.message : 'no summary line' })
      const [, total, started, done, succeeded, failed, errored, timeout] = m.map(Number)
      resolve({ total, started, done, succeeded, failed, errored, timeout })
    })
  })
}

/** h2load across each reload (the reload 1 s into a 3 s run; --smoke: 0.3 s into 1 s), and the same runs without one. */
async function h2loadRuns (contender, ctx, reload) {
  if (!installed('h2load')) return { client: 'h2load -c10 -m10', missing: 'h2load is not installed (nghttp2-client)' }
  const url = `http://127.0.0.1:${ctx.port}/`
  const seconds = CONFIG.h2loadSeconds
  const sum = { with: { succeeded: 0, failed: 0, errored: 0, timeout: 0 }, without: { succeeded: 0 } }
  for (let i = 0; i < CONFIG.h2loadRuns; i++) {
    const quiet = await h2load(url, seconds)
    if (quiet.broken) throw new Error(`h2load: ${quiet.broken}`)
    sum.without.succeeded += quiet.succeeded
    const run = h2load(url, seconds)
    await sleep(CONFIG.h2loadReloadAfterMs)
    await reload()
    const loud = await run
    if (loud.broken) throw new Error(`h2load: ${loud.broken}`)
    for (const key of ['succeeded', 'failed', 'errored', 'timeout']) sum.with[key] += loud[key]
    await sleep(CONFIG.intervalMs)
  }
  return {
    client: `h2load -c10 -m10 -D ${seconds}, ${CONFIG.h2loadRuns} runs across a reload`,
    streams: sum.with.succeeded + sum.with.failed,
    failed: sum.with.failed,
    errors: sum.with.errored || sum.with.timeout ? { errored: sum.with.errored, timeout: sum.with.timeout } : {},
    connections: '10 per run',
    throughput: sum.without.succeeded > 0 ? `${round(sum.with.succeeded / sum.without.succeeded)} of a run without reload (clients stop at GOAWAY)` : '-'
  }
}

const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length
function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0
}

const MAKERS = [
  () => contenders.standalone(),
  () => contenders.supervisor({ via: 'signal' }),
  () => contenders.pm2(1),
  contenders.plainRestart
]

async function http2Scenarios ({ quick = QUICK, smoke = false, log = () => {} } = {}) {
  CONFIG = smoke ? CONFIGS.smoke : quick ? CONFIGS.quick : CONFIGS.full
  quick = quick || smoke
  const rows = []
  for (const make of quick ? MAKERS.slice(0, 1) : MAKERS) {
    for (const client of [ownClient, curlLoops, h2loadRuns]) {
      log(`bench: ${make().name}, HTTP/2, ${client.name}...`)
      const row = await withContender(make, client)
      rows.push({ contender: make().name, project: make().project, ...row })
    }
  }
  return { when: new Date().toISOString(), node: process.version, cpus: os.cpus().length, config: CONFIG, rows }
}

function http2Table ({ rows, config }) {
  const lines = []
  lines.push(`| contender | client (does not retry a refused stream) | streams | failed | errors | sessions opened | throughput in the reload windows / steady |`)
  lines.push('|---|---|---|---|---|---|---|')
  for (const r of rows) {
    if (r.missing) {
      lines.push(`| ${r.contender} | ${r.client} | - | - | ${r.missing} | - | - |`)
      continue
    }
    const errors = Object.entries(r.errors).map(([code, n]) => `${code}: ${n}`).join(', ') || '-'
    lines.push(`| ${r.contender} | ${r.client} | ${r.streams} | ${r.failed}${r.project && r.failed > 0 ? ' ✗' : ''} | ${errors} | ${r.connections} | ${r.throughput} |`)
  }
  return lines.join('\n') + `\n\n${config.reloads} reloads every ${config.intervalMs / 1000} s for our client and curl.`
}

function http2Section (result) {
  return `${START}
## HTTP/2 across reloads

${http2Table(result)}

Measured ${result.when}, Node ${result.node}, ${result.cpus} CPUs, one run (\`npm run bench:http2\`).
No client here retries a stream refused with \`REFUSED_STREAM\`: every one would count as failed.
**sessions opened**: our client opens a new session after each GOAWAY (one per client per reload
is the least possible). **throughput**: our client's answered streams per 100 ms inside the reload
windows (signal until the new generation serves, + 500 ms) over the steady median: the dip while
the successor boots on the same cores and sessions move to it. h2load cannot show a dip: it stops a
client at its first GOAWAY and does not reconnect, so its total over a run with a reload falls
short of a run without one by the requests it never sent (its \`failed\` counts only the streams it
sent). PM2 and the plain restart run the app's own \`app.close()\`: Fastify answers every stream of a
session still open on the closing server with 503 (\`return503OnClosing\`) until the session goes,
and a client that does not retry counts each (it loops fast on them, hence the stream counts).
The machine is shared: compare within a row (reload windows against steady), not across rows.
${END}`
}

function writeHttp2Section (result, file = BENCHMARKS) {
  const text = fs.readFileSync(file, 'utf8')
  const from = text.indexOf(START)
  const to = text.indexOf(END)
  const section = http2Section(result)
  const next = from !== -1 && to !== -1
    ? text.slice(0, from) + section + text.slice(to + END.length)
    : text.trimEnd() + '\n\n' + section + '\n'
  fs.writeFileSync(file, next)
}

module.exports = { http2Scenarios, http2Table, writeHttp2Section }

if (require.main === module) {
  http2Scenarios({ log: (line) => process.stderr.write(line + '\n') }).then((result) => {
    console.log(http2Table(result))
    if (process.argv.includes('--write')) writeHttp2Section(result)
  }).catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

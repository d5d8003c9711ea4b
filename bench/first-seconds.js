'use strict'
// The first seconds of a service under load, as after a container starts: the supervisor's first
// worker (bench/app.js, the plugin's defaults) with nothing in V8's compile cache yet (a fresh
// os.tmpdir()), 30 keep-alive clients from its first answer (200) on (tools/load-recorder.js). Latency
// per 250 ms over the first 4 s, p99 and max, for one or more builds side by side (interleaved
// rounds, fresh processes and directories each time). Written for the compile cache's write, which
// blocks the event loop for as long as it takes (BENCHMARKS.md, "The first seconds").
//
//   node bench/first-seconds.js [--before <built checkout> [--before-label <name>]] [--rounds R]
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Load } = require('../tools/load-recorder')
const { APP, serving, sleep } = require('./contenders')
const { freePort } = require('../tools/free-port')

const BIN_MS = 250
const LOAD_MS = 4000
const CLIENTS = 30

const argument = (name) => { const i = process.argv.indexOf(name); return i === -1 ? undefined : process.argv[i + 1] }
const p99 = (values) => values.length === 0 ? NaN : [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.99)]
const round = (n) => Math.round(n * 10) / 10

/** One build, one run: a fresh supervisor and first worker, loaded from its first answer for LOAD_MS. */
async function runOnce (build) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-first-'))
  fs.writeFileSync(path.join(dir, 'VERSION'), '1\n')
  const port = await freePort()
  const env = { ...process.env, PORT: String(port), BENCH_PLUGIN: '1', BENCH_PLUGIN_ROOT: build.root, TMPDIR: dir }
  delete env.NODE_COMPILE_CACHE // the supervisor gives its workers Node's default directory, in TMPDIR: empty
  const bin = path.join(build.root, 'bin', 'fastify-hot-reload.js')
  const child = spawn(process.execPath, [bin, 'start', '--control', path.join(dir, 'ctl.sock'), '--', process.execPath, APP], { cwd: dir, env, stdio: ['ignore', 'ignore', 'inherit'] })
  try {
    await serving(port, { timeoutMs: 20000 })
    const samples = []
    const t0 = performance.now()
    const load = new Load({ host: '127.0.0.1', port }, { connections: CLIENTS, keepAlive: true, onResult: (r) => { if (r.ok) samples.push([r.end - t0, r.end - r.start]) } }).start()
    await sleep(LOAD_MS)
    const stats = await load.stop()
    return { samples, failed: stats.failed }
  } finally {
    child.kill('SIGTERM')
    await new Promise((resolve) => { if (child.exitCode !== null) resolve(); else child.once('exit', resolve) })
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function main () {
  const builds = [{ name: 'this build', root: path.resolve(__dirname, '..') }]
  const before = argument('--before')
  if (before !== undefined) builds.unshift({ name: argument('--before-label') ?? path.basename(before), root: path.resolve(before) })
  const rounds = Number(argument('--rounds') ?? 3)
  const bins = Math.ceil(LOAD_MS / BIN_MS)
  const results = builds.map((build) => ({ build, bins: Array.from({ length: bins }, () => []), maxAfter1s: [], failed: 0 }))
  for (let r = 0; r < rounds; r++) {
    for (const result of r % 2 === 0 ? results : [...results].reverse()) {
      process.stderr.write(`first-seconds: round ${r + 1}/${rounds}, ${result.build.name}...\n`)
      const run = await runOnce(result.build)
      result.failed += run.failed
      let max = 0
      for (const [end, ms] of run.samples) {
        const bin = Math.floor(end / BIN_MS)
        if (bin < bins) result.bins[bin].push(ms)
        if (end >= 1000 && ms > max) max = ms
      }
      result.maxAfter1s.push(round(max))
    }
  }
  const header = Array.from({ length: bins }, (_, i) => i * BIN_MS)
  console.log(`| build (supervisor's first worker, empty compile cache, ${CLIENTS} keep-alive clients, ${rounds} interleaved rounds) | failed | slowest request after the first second, per round (ms) | ${header.join(' | ')} |`)
  console.log(`|---|---|---|${header.map(() => '---').join('|')}|`)
  for (const result of results) {
    console.log(`| ${result.build.name} | ${result.failed} | ${result.maxAfter1s.join(', ')} | ${result.bins.map((values) => round(p99(values))).join(' | ')} |`)
  }
  console.log(`\np99 (ms) of the requests that ended in each ${BIN_MS} ms from the first answer. Node ${process.version}, ${os.cpus().length} CPUs, ${new Date().toISOString()}.`)
}

main().catch((err) => { console.error(err); process.exitCode = 1 })

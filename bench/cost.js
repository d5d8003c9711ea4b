'use strict'
// The plugin's per-request CPU cost, counted in instructions by valgrind's callgrind. Requests/s
// swing by ±20% between runs on this shared 2-core machine, far more than the few percent the
// plugin can cost; instruction counts do not depend on what else the machine is doing.
// The server runs under callgrind. After a warm-up (so that V8 has optimized the hot path), the
// counters are zeroed, a fixed number of keep-alive requests is sent and the counters are dumped:
// one window. The first window still counts late JIT work and is dropped; the median of the rest
// is kept.
const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const autocannon = require('autocannon')
const { APP, sleep } = require('./contenders')

const VARIANTS = [
  { name: 'bare Fastify', env: {} },
  { name: 'Fastify + plugin', env: { BENCH_PLUGIN: '1' } },
  { name: 'Fastify + plugin, connectionHandoff: false', env: { BENCH_PLUGIN: '1', BENCH_HANDOFF: '0' } },
  { name: 'Fastify + plugin + @fastify/under-pressure (its default)', env: { BENCH_PLUGIN: '1', BENCH_UNDER_PRESSURE: '1' } }
]

function missingTool () {
  for (const tool of ['valgrind', 'callgrind_control']) {
    try { execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }) } catch { return tool }
  }
  return null
}

async function answering (url, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the app under callgrind exited with code ${child.exitCode}`)
    try {
      if ((await fetch(url)).ok) return
    } catch {}
    await sleep(200)
  }
  throw new Error(`the app under callgrind did not answer within ${timeoutMs} ms`)
}

/** Total instructions in the newest callgrind dump in `dir`. */
function lastDumpTotal (dir) {
  const dumps = fs.readdirSync(dir).filter((f) => /^cg\.out\.\d+$/.test(f))
  const newest = dumps.sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())).at(-1)
  if (newest === undefined) throw new Error('callgrind wrote no dump')
  const summary = /^summary: (\d+)$/m.exec(fs.readFileSync(path.join(dir, newest), 'utf8'))
  if (summary === null) throw new Error(`no summary line in ${newest}`)
  return Number(summary[1])
}

async function instructionsPerRequest (variant, port, { warmup, requests, windows }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-cost-'))
  fs.writeFileSync(path.join(dir, 'VERSION'), '1\n')
  const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${path.join(dir, 'cg.out')}`, process.execPath, APP], {
    cwd: dir,
    env: { ...process.env, PORT: String(port), ...variant.env },
    stdio: 'ignore'
  })
  const url = `http://127.0.0.1:${port}/`
  try {
    await answering(url, child, 120000)
    await autocannon({ url, connections: 10, amount: warmup })
    const perRequest = []
    for (let window = 0; window < windows; window++) {
      execFileSync('callgrind_control', ['--zero', String(child.pid)], { stdio: 'ignore' })
      const result = await autocannon({ url, connections: 10, amount: requests })
      if (result.non2xx + result.errors > 0) throw new Error(`${variant.name}: ${result.non2xx + result.errors} requests failed under callgrind`)
      execFileSync('callgrind_control', ['--dump', String(child.pid)], { stdio: 'ignore' })
      perRequest.push(Math.round(lastDumpTotal(dir) / requests))
    }
    const kept = perRequest.slice(1).sort((a, b) => a - b)
    return { name: variant.name, instructionsPerRequest: kept[Math.floor(kept.length / 2)], windows: perRequest }
  } finally {
    child.kill('SIGKILL')
    await new Promise((resolve) => child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', resolve))
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Instructions per request of each variant and, as `ratioToBare`, bare Fastify's count over the
 * variant's: the throughput the plugin leaves when the CPU is the limit. `{ skipped }` without valgrind.
 */
async function instructionCost ({ quick, freePort }) {
  const missing = missingTool()
  if (missing !== null) return { skipped: `${missing} not found (Debian package valgrind)` }
  const config = quick ? { warmup: 2000, requests: 1000, windows: 2 } : { warmup: 10000, requests: 5000, windows: 4 }
  const variants = quick ? VARIANTS.slice(0, 2) : VARIANTS
  const rows = []
  for (const variant of variants) rows.push(await instructionsPerRequest(variant, await freePort(), config))
  const bare = rows[0].instructionsPerRequest
  return { config, rows: rows.map((row) => ({ ...row, ratioToBare: Math.round((bare / row.instructionsPerRequest) * 1000) / 1000 })) }
}

module.exports = { instructionCost }

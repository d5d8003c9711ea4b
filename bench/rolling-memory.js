'use strict'
// Peak resident memory during one supervisor reload, whole generation against rolling
// (--reload-batch 1): the sum of the workers' RSS, sampled every 25 ms, two runs each.
//   node bench/rolling-memory.js [--workers N]
// The workers run the test fixture holding 60 MB, so that the app's memory dominates Node's own.
const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const REPO = path.resolve(__dirname, '..')
const BIN = path.join(REPO, 'bin/fastify-hot-reload.js')
const APP = path.join(REPO, 'test/fixtures/app.js')
const WORKERS = process.argv.includes('--workers') ? Number(process.argv[process.argv.indexOf('--workers') + 1]) : 3

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Live (not zombie) children of pid, from /proc. */
function childrenOf (pid) {
  const children = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(ppid) === pid && state !== 'Z') children.push(Number(entry))
    } catch {}
  }
  return children
}

function rssMb (pid) {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024
  } catch {
    return 0
  }
}

function writeRelease (dir, version) {
  fs.writeFileSync(path.join(dir, 'release.json'), JSON.stringify({ version, plugin: { idleGrace: 300 }, hogMemoryMb: 60 }))
}

async function oneReload (extraFlags) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-rolling-'))
  const control = path.join(dir, 'ctl', 'app.sock')
  writeRelease(dir, 1)
  const supervisor = spawn(process.execPath, [BIN, 'start', '--control', control, '--workers', String(WORKERS), ...extraFlags, '--', process.execPath, APP], {
    cwd: dir,
    env: { ...process.env, FHR_PLUGIN: REPO, PWD: dir },
    stdio: 'ignore'
  })
  const total = () => childrenOf(supervisor.pid).reduce((sum, pid) => sum + rssMb(pid), 0)
  try {
    const deadline = Date.now() + 30000
    while (childrenOf(supervisor.pid).length < WORKERS && Date.now() < deadline) await sleep(100)
    await sleep(1500)
    const steady = total()
    let peak = 0
    let peakProcesses = 0
    const sampler = setInterval(() => {
      peak = Math.max(peak, total())
      peakProcesses = Math.max(peakProcesses, childrenOf(supervisor.pid).length)
    }, 25)
    writeRelease(dir, 2)
    execFileSync(process.execPath, [BIN, 'reload', '--control', control], { timeout: 60000 })
    await sleep(3000)
    clearInterval(sampler)
    return { steadyMb: Math.round(steady), peakMb: Math.round(peak), peakProcesses }
  } finally {
    supervisor.kill('SIGTERM')
    await new Promise((resolve) => supervisor.exitCode !== null ? resolve() : supervisor.once('exit', resolve))
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function main () {
  console.log('| reload | steady (MB) | peak during the reload (MB) | peak worker processes |')
  console.log('|---|---|---|---|')
  for (const [name, flags] of [[`whole generation (${WORKERS} at once)`, []], ['rolling, `--reload-batch 1`', ['--reload-batch', '1']]]) {
    const runs = [await oneReload(flags), await oneReload(flags)]
    console.log(`| ${name} | ${runs.map((r) => r.steadyMb).join(', ')} | ${runs.map((r) => r.peakMb).join(', ')} | ${Math.max(...runs.map((r) => r.peakProcesses))} |`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})

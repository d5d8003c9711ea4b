'use strict'
// `npm run demo`: starts examples/basic, puts keep-alive and connection-per-request load on it,
// deploys a new VERSION and reloads it a few times while the load runs, then prints what every
// client saw. Nothing is left behind: the service and its temporary directory are removed.
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { Load } = require('../tools/load-recorder')

const REPO = path.resolve(__dirname, '..')
const RELOADS = Number(process.env.DEMO_RELOADS || 3)

function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function getJson (port, route) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: route, agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => { try { resolve(JSON.parse(body)) } catch (err) { reject(err) } })
    }).on('error', reject)
  })
}

function alive (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^\S+ \(.*\) [ZX]/.test(stat)
  } catch {
    try { process.kill(pid, 0); return true } catch { return false }
  }
}

/** A copy of the example in a temporary directory, using this checkout as 'fastify-hot-reload'. */
function stage () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fastify-hot-reload-demo-'))
  fs.copyFileSync(path.join(__dirname, 'basic/app.js'), path.join(dir, 'app.js'))
  fs.writeFileSync(path.join(dir, 'VERSION'), '1\n')
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(REPO, path.join(dir, 'node_modules/fastify-hot-reload'))
  fs.symlinkSync(path.join(REPO, 'node_modules/fastify'), path.join(dir, 'node_modules/fastify'))
  return dir
}

async function main () {
  const dir = stage()
  const pids = new Set()
  const child = spawn(process.execPath, ['app.js'], { cwd: dir, env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] })
  pids.add(child.pid)
  const cleanup = () => {
    for (const pid of pids) if (alive(pid)) { try { process.kill(pid, 'SIGKILL') } catch {} }
    fs.rmSync(dir, { recursive: true, force: true })
  }
  process.once('SIGINT', () => { cleanup(); process.exit(130) })
  try {
    const port = await new Promise((resolve, reject) => {
      // LOG_LEVEL=warn hides the listen line: find the port through /proc instead of the log.
      const deadline = Date.now() + 20000
      const poll = async () => {
        const found = listeningPort(child.pid)
        if (found) return resolve(found)
        if (Date.now() > deadline) return reject(new Error('the demo service did not start'))
        setTimeout(poll, 50)
      }
      poll()
    })
    // With keepPid (Node 22.15+) the pid we started is the supervisor for good and the generations
    // are its workers; on Node 20 each generation is a new pid and the signal goes to the newest.
    let serving = await waitForHealth(port, () => true)
    const keptPid = serving.pid !== child.pid
    console.log(`demo service (generation 1, pid ${serving.pid}) on http://127.0.0.1:${port}` +
      (keptPid ? `; the pid started, ${child.pid}, is the supervisor (keepPid)` : ''))
    const keepAlive = new Load({ host: '127.0.0.1', port }, { connections: 20, keepAlive: true }).start()
    const perRequest = new Load({ host: '127.0.0.1', port }, { connections: 10, keepAlive: false }).start()
    await sleep(1000)
    const reloads = []
    for (let version = 2; version <= RELOADS + 1; version++) {
      fs.writeFileSync(path.join(dir, 'VERSION'), `${version}\n`)
      const started = Date.now()
      const old = serving.pid
      process.kill(keptPid ? child.pid : old, 'SIGUSR2')
      serving = await waitForHealth(port, (health) => health.pid !== old)
      const servingMs = Date.now() - started
      pids.add(serving.pid)
      while (alive(old)) await sleep(10)
      reloads.push({ version, oldPid: old, newPid: serving.pid, servingMs, oldGoneMs: Date.now() - started })
      console.log(`reload ${version - 1}: pid ${old} -> ${serving.pid}, new generation serving after ${servingMs} ms, old one gone after ${Date.now() - started} ms`)
      await sleep(1000)
    }
    const results = [['keep-alive (20 connections)', await keepAlive.stop()], ['new connection per request (10 clients)', await perRequest.stop()]]
    console.log('\nclient-side result of every request during', RELOADS, 'reloads:')
    console.table(results.map(([name, s]) => ({
      load: name,
      requests: s.sent,
      ok: s.ok,
      failed: s.failed,
      'non-2xx': s.non2xx,
      'versions served': Object.keys(s.versions).join(','),
      'connections opened': s.socketsOpened
    })))
    console.table(reloads.map((r) => ({ reload: `v${r.version - 1} -> v${r.version}`, 'new serving (ms)': r.servingMs, 'old exited (ms)': r.oldGoneMs })))
    const failed = results.reduce((sum, [, s]) => sum + s.failed + s.non2xx, 0)
    console.log(failed === 0 ? '\nzero failed requests.' : `\n${failed} failed requests.`)
    const last = keptPid ? child.pid : serving.pid
    process.kill(last, 'SIGTERM')
    while (alive(last)) await sleep(10)
    process.exitCode = failed === 0 ? 0 : 1
  } finally {
    cleanup()
  }
}

/** Polls /health until it answers and `accept`s the answer (20 s deadline). */
async function waitForHealth (port, accept) {
  const deadline = Date.now() + 20000
  for (;;) {
    const health = await getJson(port, '/health').catch(() => ({}))
    if (health.pid !== undefined && accept(health)) return health
    if (Date.now() > deadline) throw new Error('the demo service did not answer /health in time')
    await sleep(10)
  }
}

/** The TCP port a pid listens on, read from /proc (Linux). */
function listeningPort (pid) {
  try {
    const inodes = new Set(fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try { return /socket:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] } catch { return undefined }
    }).filter(Boolean))
    for (const line of fs.readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols[3] === '0A' && inodes.has(cols[9])) return parseInt(cols[1].split(':')[1], 16)
    }
  } catch {}
  return undefined
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})

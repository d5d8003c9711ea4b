'use strict'
// The ways to run and reload the same service that the benchmark compares. Each contender starts
// the app on a fixed loopback port, reloads it onto a new VERSION, stops it, and names every process
// it started so that nothing is left behind.
const { spawn, execFile } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const http2 = require('node:http2')
const path = require('node:path')

const REPO = path.resolve(__dirname, '..')
const APP = path.join(__dirname, 'app.js')
const PM2 = path.join(REPO, 'node_modules/.bin/pm2')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function alive (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3))
  } catch {
    return false
  }
}

async function waitGone (pid, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs
  while (alive(pid) && Date.now() < deadline) await sleep(5)
  return !alive(pid)
}

function answer (port, route = '/') {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: route, agent: false, timeout: 2000 }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => {
        try { resolve({ status: response.statusCode, ...JSON.parse(body) }) } catch { resolve(null) }
      })
    })
    request.on('error', () => resolve(null))
    request.on('timeout', () => { request.destroy(); resolve(null) })
  })
}

/** The same over HTTP/2 without TLS (the app with BENCH_HTTP2=1), on a session of its own. */
function answerH2 (port, route = '/') {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`)
    const done = (value) => { session.destroy(); resolve(value) }
    session.on('error', () => done(null))
    session.setTimeout(2000, () => done(null))
    const request = session.request({ ':path': route })
    let status = 0
    let body = ''
    request.setEncoding('utf8')
    request.on('response', (headers) => { status = headers[':status'] })
    request.on('data', (chunk) => { body += chunk })
    request.on('end', () => {
      try { done({ status, ...JSON.parse(body) }) } catch { done(null) }
    })
    request.on('error', () => done(null))
  })
}

// The ports whose app serves HTTP/2 (h2c): set by `track` from ctx.env.BENCH_HTTP2.
const http2Ports = new Set()

/** Polls until the service answers 200 (optionally from another pid than `not`). */
async function serving (port, { not, timeoutMs = 30000 } = {}) {
  const deadline = Date.now() + timeoutMs
  const ask = http2Ports.has(port) ? answerH2 : answer
  while (Date.now() < deadline) {
    const got = await ask(port)
    if (got !== null && got.status === 200 && got.pid !== not) return got
    await sleep(5)
  }
  throw new Error(`nothing answered on port ${port} within ${timeoutMs} ms`)
}

// The directories (one per contender run, made by bench/run.js) of this bench process. Every app
// process runs in one of them, so a process is ours by its working directory: a bench run
// started by someone else on this machine (same bench/app.js path) is never counted or killed.
const ours = new Map() // real path of ctx.dir -> { daemonPid() }

function track (ctx, daemonPid = () => undefined) {
  if (ctx.env?.BENCH_HTTP2 === '1') http2Ports.add(ctx.port)
  else http2Ports.delete(ctx.port)
  for (const d of ours.keys()) if (!fs.existsSync(d)) ours.delete(d)
  ours.set(fs.realpathSync(ctx.dir), { daemonPid })
}

function cwdOf (pid) {
  try { return fs.readlinkSync(`/proc/${pid}/cwd`) } catch { return null }
}

/**
 * Every app generation of this bench (plugin generations, PM2 workers, plain processes) running in
 * `dir`, or in any directory of this bench process; not the supervisor nor PM2's daemon.
 */
function appPids (dir) {
  const dirs = new Set()
  if (dir) { if (fs.existsSync(dir)) dirs.add(fs.realpathSync(dir)) } else for (const d of ours.keys()) dirs.add(d)
  const pids = []
  if (dirs.size === 0) return pids
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      // Not a supervisor (this checkout's or another build's, bench/reload-tail.js --before).
      if (cmdline.includes(APP) && !cmdline.includes('bin/fastify-hot-reload.js') && dirs.has(cwdOf(entry))) pids.push(Number(entry))
    } catch {}
  }
  return pids
}

// Interrupted (Ctrl-C, a CI timeout): end every process this bench started, by pid, and remove its
// directories, instead of leaving detached generations and a PM2 daemon behind.
let interrupted = false
function onInterrupt (signal) {
  if (interrupted) return
  interrupted = true
  killAll([...commands].map((child) => child.pid)) // first, so that `pm2 start` cannot start a daemon after this
  for (const [dir, { daemonPid }] of ours) {
    if (!fs.existsSync(dir)) continue
    try {
      const daemon = daemonPid()
      killAll([...appPids(dir), ...(daemon ? [daemon] : [])])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  process.stderr.write(`bench: ${signal}, every process of this bench ended\n`)
  process.exit(128 + require('node:os').constants.signals[signal])
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, onInterrupt)

function rssMb (pid) {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024
  } catch {
    return 0
  }
}

const commands = new Set() // pm2 / reload commands still running

function run (command, args, options) {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 60000, ...options }, (err, stdout, stderr) => {
      commands.delete(child)
      if (err) reject(new Error(`${path.basename(command)} ${args.join(' ')}: ${err.message}\n${stderr}`))
      else resolve(stdout)
    })
    commands.add(child)
  })
}

// ctx.node: the Node binary the app (and the supervisor) runs on, when not this process's
// (bench/reload-tail.js --node runs several side by side; the load generator stays on this one).
const nodeOf = (ctx) => ctx.node ?? process.execPath

// BENCH_NODE_FLAGS (a diagnostic, in ctx.env): Node and V8 flags for the app's process, which its
// successors get too (they start with the same execArgv).
const nodeFlags = (ctx) => (ctx.env?.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)

function spawnApp (ctx, env, command = nodeOf(ctx), args = [...nodeFlags(ctx), APP]) {
  if (!ours.has(fs.realpathSync(ctx.dir))) track(ctx)
  const child = spawn(command, args, {
    cwd: ctx.dir,
    // The standalone contenders are one process per generation: keepPid off (it is on from Node 22.15).
    env: { ...process.env, PORT: String(ctx.port), FASTIFY_HOT_RELOAD_KEEP_PID: '0', ...ctx.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
    detached: true // its own process group: the bench's signals are its own business
  })
  child.unref()
  return child
}

function killAll (pids) {
  for (const pid of pids) if (alive(pid)) { try { process.kill(pid, 'SIGKILL') } catch {} }
}

/** This project, standalone: SIGUSR2 to the serving generation. */
function standalone ({ handoff = true } = {}) {
  let current
  let dir
  return {
    name: handoff ? 'fastify-hot-reload (standalone, defaults)' : 'fastify-hot-reload (standalone, connectionHandoff: false)',
    project: true,
    async start (ctx) {
      dir = ctx.dir
      spawnApp(ctx, { BENCH_PLUGIN: '1', BENCH_HANDOFF: handoff ? '1' : '0' })
      current = (await serving(ctx.port)).pid
    },
    async reload (ctx) {
      const old = current
      const started = performance.now()
      process.kill(old, 'SIGUSR2')
      current = (await serving(ctx.port, { not: old })).pid
      const servingMs = performance.now() - started
      await waitGone(old)
      return { servingMs, goneMs: performance.now() - started }
    },
    daemonPid: () => undefined,
    async stop () {
      const pids = appPids(dir)
      if (alive(current)) process.kill(current, 'SIGTERM')
      await waitGone(current, 15000)
      killAll([...pids, ...appPids(dir)])
    }
  }
}

/**
 * This project's supervisor, reloaded by the `fastify-hot-reload reload` command on its control
 * socket (the time includes the command's own Node start-up), or by SIGHUP to the supervisor
 * (measured like the standalone signal: from the signal to a new pid serving).
 */
function supervisor ({ via = 'command', workers = 1, root = REPO, pidFile } = {}) {
  // `root`: another build's checkout (its bin and dist); `pidFile`: the supervisor writes each reload's record beside it.
  const bin = path.join(root, 'bin/fastify-hot-reload.js')
  let child
  let control
  let dir
  const each = workers > 1 ? `, ${workers} workers` : ''
  return {
    name: via === 'command' ? `fastify-hot-reload (supervisor${each}, reload command)` : `fastify-hot-reload (supervisor${each}, SIGHUP)`,
    project: true,
    async start (ctx) {
      dir = ctx.dir
      control = path.join(ctx.dir, 'ctl', 'app.sock')
      track(ctx, () => child && child.pid)
      const file = pidFile ?? ctx.pidFile
      const record = file === undefined ? [] : ['--pid-file', file]
      // bench/run.js --smoke: the supervisor's probation as short as the app's.
      const probation = process.env.BENCH_PROBATION ? ['--probation', process.env.BENCH_PROBATION] : []
      child = spawnApp(ctx, { BENCH_PLUGIN: '1' }, nodeOf(ctx), [bin, 'start', '--control', control, '--workers', String(workers), ...record, ...probation, '--', nodeOf(ctx), ...nodeFlags(ctx), APP])
      await serving(ctx.port)
    },
    async reload (ctx) {
      const before = await serving(ctx.port)
      const started = performance.now()
      if (via === 'command') {
        const out = JSON.parse(await run(nodeOf(ctx), [bin, 'reload', '--control', control, '--json']))
        if (!out.ok) throw new Error(`supervisor reload failed: ${out.error && out.error.message}`)
      } else {
        process.kill(child.pid, 'SIGHUP')
        await serving(ctx.port, { not: before.pid })
      }
      const servingMs = performance.now() - started
      await waitGone(before.pid)
      return { servingMs, goneMs: performance.now() - started }
    },
    daemonPid: () => child.pid,
    async stop () {
      const pids = appPids(dir)
      if (alive(child.pid)) process.kill(child.pid, 'SIGTERM')
      await waitGone(child.pid, 15000)
      killAll([...pids, ...appPids(dir), child.pid])
    }
  }
}

/** PM2 cluster mode, `pm2 reload` with wait_ready; its own PM2_HOME, its daemon killed at the end. */
function pm2 (instances) {
  let env
  let home
  let dir
  return {
    name: `PM2 cluster, ${instances} instance${instances > 1 ? 's' : ''} (pm2 reload, wait_ready)`,
    project: false,
    async start (ctx) {
      dir = ctx.dir
      home = path.join(ctx.dir, 'pm2home')
      env = { ...process.env, PM2_HOME: home, PORT: String(ctx.port), PM2_DISCRETE_MODE: 'true', ...ctx.env }
      track(ctx, () => this.daemonPid())
      await run(PM2, ['start', APP, '--name', 'bench', '-i', String(instances), '--wait-ready', '--listen-timeout', '10000', '--kill-timeout', '10000', '--no-autorestart'], { cwd: ctx.dir, env })
      await serving(ctx.port)
    },
    async reload () {
      const started = performance.now()
      await run(PM2, ['reload', 'bench'], { env })
      const servingMs = performance.now() - started
      return { servingMs, goneMs: servingMs }
    },
    daemonPid: () => {
      try { return Number(fs.readFileSync(path.join(home, 'pm2.pid'), 'utf8')) } catch { return undefined }
    },
    async stop () {
      const daemon = this.daemonPid()
      const pids = appPids(dir)
      await run(PM2, ['kill'], { env }).catch(() => {})
      killAll([...pids, ...appPids(dir), ...(daemon ? [daemon] : [])])
    }
  }
}

/** Node's cluster module, N workers, reloaded one worker at a time as its docs suggest (bench/cluster-primary.js). */
function nodeCluster (workers) {
  let primary
  let dir
  const message = (expected) => new Promise((resolve, reject) => {
    const onMessage = (got) => {
      if (got !== expected && !String(got).startsWith('failed')) return
      primary.off('message', onMessage)
      if (got === expected) resolve()
      else reject(new Error(`node cluster: ${got}`))
    }
    primary.on('message', onMessage)
  })
  return {
    name: `Node cluster module, ${workers} workers (rolling restart)`,
    project: false,
    async start (ctx) {
      dir = ctx.dir
      track(ctx, () => primary && primary.pid)
      primary = spawn(process.execPath, [path.join(__dirname, 'cluster-primary.js')], {
        cwd: ctx.dir,
        env: { ...process.env, PORT: String(ctx.port), BENCH_CLUSTER_WORKERS: String(workers), ...ctx.env },
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        detached: true
      })
      await message('ready')
      await serving(ctx.port)
    },
    async reload () {
      const started = performance.now()
      const done = message('reloaded')
      primary.send('reload')
      await done
      const servingMs = performance.now() - started
      return { servingMs, goneMs: servingMs }
    },
    daemonPid: () => primary && primary.pid,
    async stop () {
      const pids = appPids(dir)
      if (primary && alive(primary.pid)) process.kill(primary.pid, 'SIGTERM')
      if (primary) await waitGone(primary.pid, 15000)
      killAll([...pids, ...appPids(dir), ...(primary ? [primary.pid] : [])])
    }
  }
}

/** A plain restart: SIGTERM, wait for the exit, start again. */
function plainRestart () {
  let current
  let dir
  return {
    name: 'plain restart (SIGTERM, start)',
    project: false,
    async start (ctx) {
      dir = ctx.dir
      spawnApp(ctx, {})
      current = (await serving(ctx.port)).pid
    },
    async reload (ctx) {
      const started = performance.now()
      process.kill(current, 'SIGTERM')
      await waitGone(current)
      const goneMs = performance.now() - started
      spawnApp(ctx, {})
      current = (await serving(ctx.port)).pid
      return { servingMs: performance.now() - started, goneMs }
    },
    daemonPid: () => undefined,
    async stop () {
      const pids = appPids(dir)
      if (alive(current)) process.kill(current, 'SIGTERM')
      await waitGone(current, 10000)
      killAll([...pids, ...appPids(dir)])
    }
  }
}

module.exports = { standalone, supervisor, pm2, nodeCluster, plainRestart, serving, spawnApp, appPids, rssMb, alive, waitGone, killAll, sleep, APP }

'use strict'
// How should the N workers of one generation accept connections? (issue 10)
//
//   node bench/accept-balance.js [--workers K] [--rounds 3] [--seconds 3] [--no-restart] [--json FILE]
//     [--only balance|trials|restart] [--strategies a,b] [--restart-strategies a,b] [--restart-rounds 2]
//
// Plain Node HTTP workers answering {"pid":…,"c":…} (c: the connection's number in that worker), under
// each strategy:
//   shared      one listening socket bound once, inherited by every worker as fd 3
//   reuseport   one SO_REUSEPORT socket per worker slot, held by this process, slot i's worker gets it as fd 3
//               (Node ≥ 22.12 / 23.1: listen({ reusePort: true }); skipped on older Nodes)
//   cluster-rr  Node's cluster module, round-robin (the Linux default): the baseline
//   cluster-none  cluster with SCHED_NONE (the primary binds, every worker accepts on that socket)
//   supervisor  the real \`fastify-hot-reload start --workers N\` on a minimal Fastify app with the plugin:
//               a socket per slot (Node ≥ 22.12) and the supervisor's keep-alive balance (it moves idle
//               keep-alive connections from the worker holding most to the one holding fewest).
//               Fastify answers more slowly than a bare http server: compare its shares, not its req/s.
//   supervisor-nobalance  the same with connectionHandoff: false (no balance): what the balance costs and brings
// and two loads, each from a load generator in its own process (undici Pool, loopback only), which
// records which worker answered every request and on which connection:
//   close       connection per request (`connection: close`), 20 concurrent clients
//   keep-alive  10×N persistent connections
// Strategies are interleaved over rounds (order rotated each round); throughput is reported as the
// ratio to cluster-rr within the same round, median over rounds.
//
// Then (unless --no-restart) a restart scenario with 2 workers: under load, slot 1's worker is killed
// (SIGKILL) and a new one is started for that slot right away or after 1 s (a restart backoff); every
// request's outcome and latency is counted, shared socket against reuseport, and reuseport+cover: as
// reuseport, but once slot 1's worker is gone the orchestrator sends slot 1's socket to slot 0's
// worker, which accepts on it too until slot 1's new worker is ready and then closes its copy (what
// the supervisor does, lib/supervisor/empty-slots.ts).
//
// How this process holds sockets without accepting on them: a short-lived "binder" child binds them
// (net.Server#listen, with reusePort for reuseport) and sends each raw listening handle up the IPC
// channel (`process.send(msg, server._handle)`); the handle arrives here as a bare TCP handle that is
// never read from, and its fd goes in each worker's stdio. The binder then exits: its copies close,
// ours keep the sockets open. (A net.Server listening in this process would itself accept: its fd can
// be passed to workers as well, but this process would then take a share of the connections.)
//
// Every child gets a deadline (it exits by itself), and every process started here is killed by pid at
// the end, on failure too.
const { spawn } = require('node:child_process')
const cluster = require('node:cluster')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const { freePort } = require('../tools/free-port')

const argv = process.argv.slice(2)
function arg (name, fallback) {
  const i = argv.indexOf(name)
  return i === -1 ? fallback : argv[i + 1]
}
const has = (name) => argv.includes(name)

const HOST = '127.0.0.1'
const CHILD_DEADLINE_MS = 60_000

// ---------------------------------------------------------------------------------------------------
// Roles of the child processes

function runWorker () {
  let connections = 0
  const prefix = `{"pid":${process.pid},"c":`
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(prefix + req.socket._abConn + '}')
  })
  server.keepAliveTimeout = 30_000
  server.on('connection', (socket) => { socket._abConn = connections++ })
  const ready = () => process.send({ ready: true, pid: process.pid })
  if (cluster.isWorker) server.listen(Number(process.env.AB_PORT), HOST, ready)
  else server.listen({ fd: 3 }, ready)
  // reuseport+cover: accept on another slot's socket too while that slot has no worker, as the
  // supervisor's workers do (lib/slot-cover.ts); 'uncover' closes only this process's copy.
  const covers = []
  process.on('message', (m, handle) => {
    if (m.cover && handle) {
      const cover = net.createServer((socket) => server.emit('connection', socket))
      cover.listen(handle)
      covers.push(cover)
    } else if (m.uncover) {
      for (const cover of covers.splice(0)) cover.close()
    }
  })
  setTimeout(() => process.exit(3), CHILD_DEADLINE_MS).unref()
  process.on('disconnect', () => process.exit(0))
}

function runBinder () {
  const count = Number(arg('--count'))
  const reusePort = arg('--mode') === 'reuseport'
  setTimeout(() => process.exit(3), 10_000).unref()
  const servers = []
  let port = 0
  const bindNext = () => {
    if (servers.length === count) return sendAll(0)
    const server = net.createServer()
    server.on('error', (err) => { process.send({ error: err.message }); process.exit(1) })
    server.listen({ port, host: HOST, reusePort, backlog: 511 }, () => {
      port = server.address().port
      servers.push(server)
      bindNext()
    })
  }
  const sendAll = (i) => {
    if (i === servers.length) return process.disconnect()
    process.send({ slot: i, port }, servers[i]._handle, () => sendAll(i + 1))
  }
  bindNext()
}

function runClusterPrimary () {
  const n = Number(arg('--workers'))
  cluster.schedulingPolicy = arg('--sched') === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR
  cluster.setupPrimary({ exec: __filename, args: ['--role', 'worker'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const pids = []
  const killAll = () => { for (const w of Object.values(cluster.workers)) { try { process.kill(w.process.pid, 'SIGKILL') } catch {} } }
  setTimeout(() => { killAll(); process.exit(3) }, CHILD_DEADLINE_MS).unref()
  process.on('disconnect', () => { killAll(); process.exit(0) })
  // kill slot i's worker and fork a new one after `delay` ms (the restart scenario)
  const slots = []
  const fork = (slot) => {
    const w = cluster.fork({ AB_PORT: arg('--port') })
    slots[slot] = w
    w.on('message', (m) => {
      if (!m.ready) return
      if (pids.length < n) {
        pids.push(m.pid)
        if (pids.length === n) process.send({ ready: true, pids })
      } else process.send({ respawned: m.pid, slot })
    })
  }
  process.on('message', (m) => {
    if (m.kill === undefined) return
    const w = slots[m.kill]
    w.once('exit', () => setTimeout(() => fork(m.kill), m.delay))
    process.kill(w.process.pid, 'SIGKILL')
  })
  for (let i = 0; i < n; i++) fork(i)
}

/** Opens `connections` connections at once, one request on each, keeps them all open until every one
 * has answered, then closes them: which worker took each connection, `trials` times over. */
async function runTrials () {
  const port = Number(arg('--port'))
  const connections = Number(arg('--connections'))
  const trials = Number(arg('--trials'))
  setTimeout(() => process.exit(3), CHILD_DEADLINE_MS).unref()
  const one = () => new Promise((resolve, reject) => {
    const socket = net.connect(port, HOST)
    let data = ''
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    socket.on('data', (chunk) => {
      data += chunk
      const m = /"pid":(\d+)/.exec(data)
      if (m) resolve({ socket, pid: m[1] })
    })
    socket.on('error', reject)
  })
  const results = []
  for (let t = 0; t < trials; t++) {
    const open = await Promise.all(Array.from({ length: connections }, one))
    const perPid = {}
    for (const { socket, pid } of open) { perPid[pid] = (perPid[pid] || 0) + 1; socket.destroy() }
    results.push(perPid)
    await sleep(20)
  }
  process.send({ result: { trials: results } }, () => process.exit(0))
}

async function runLoad () {
  if (arg('--kind') === 'trials') return runTrials()
  const { Pool } = require('undici')
  const port = Number(arg('--port'))
  const kind = arg('--kind')
  const connections = Number(arg('--connections'))
  const warmMs = Number(arg('--warm-ms'))
  const measureMs = Number(arg('--ms'))
  const timeline = has('--timeline')
  setTimeout(() => process.exit(3), CHILD_DEADLINE_MS).unref()
  const pool = new Pool(`http://${HOST}:${port}`, { connections, pipelining: 1, keepAliveTimeout: 30_000, connectTimeout: 5000, headersTimeout: 5000, bodyTimeout: 5000 })
  const perPid = {}
  const connsPerPid = {}
  const errorCodes = {}
  const latencies = []
  const events = [] // [start offset ms, latency ms, ok]
  let measuring = false
  let stop = false
  let t0 = 0
  async function client () {
    while (!stop) {
      const start = performance.now()
      let ok = false
      let pid
      let conn
      try {
        const { statusCode, body } = await pool.request({ path: '/', method: 'GET', reset: kind === 'close' })
        const text = await body.text()
        if (statusCode === 200) {
          const parsed = JSON.parse(text)
          pid = parsed.pid
          conn = parsed.c
          ok = true
        } else if (measuring) errorCodes['http ' + statusCode] = (errorCodes['http ' + statusCode] || 0) + 1
      } catch (err) {
        const code = err.code || err.name
        if (measuring) errorCodes[code] = (errorCodes[code] || 0) + 1
      }
      if (!measuring) continue
      const latency = performance.now() - start
      latencies.push(latency)
      if (timeline) events.push([Math.round(start - t0), Math.round(latency * 10) / 10, ok ? 1 : 0])
      if (ok) {
        perPid[pid] = (perPid[pid] || 0) + 1
        ;(connsPerPid[pid] ||= new Set()).add(conn)
      }
    }
  }
  const clients = Array.from({ length: connections }, client)
  await sleep(warmMs)
  measuring = true
  t0 = performance.now()
  process.send({ measuring: true })
  await sleep(measureMs)
  measuring = false
  const seconds = (performance.now() - t0) / 1000
  stop = true
  await Promise.all(clients)
  await pool.close().catch(() => {})
  latencies.sort((a, b) => a - b)
  const requests = Object.values(perPid).reduce((a, b) => a + b, 0)
  const result = {
    requests,
    rps: requests / seconds,
    errors: Object.values(errorCodes).reduce((a, b) => a + b, 0),
    errorCodes,
    perPid,
    connsPerPid: Object.fromEntries(Object.entries(connsPerPid).map(([pid, s]) => [pid, s.size])),
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    max: latencies[latencies.length - 1] || 0
  }
  if (timeline) result.events = events
  process.send({ result }, () => process.exit(0))
}

function pct (sorted, p) {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------------
// The orchestrator

const started = new Set() // every pid started by this process (and the cluster workers it learns of)
function track (child) {
  started.add(child.pid)
  child.once('exit', () => started.delete(child.pid))
  return child
}
function killEverything () {
  for (const pid of started) { try { process.kill(pid, 'SIGKILL') } catch {} }
  started.clear()
}
function waitExit (child, ms = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL') } catch {} resolve() }, ms)
    child.once('exit', () => { clearTimeout(t); resolve() })
  })
}
function once (child, predicate, what, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { cleanup(); reject(new Error(`timed out waiting for ${what} (pid ${child.pid})`)) }, ms)
    const onMessage = (m, handle) => { if (predicate(m)) { cleanup(); resolve({ m, handle }) } }
    const onExit = (code, signal) => { cleanup(); reject(new Error(`${what}: pid ${child.pid} exited (${code ?? signal})`)) }
    const cleanup = () => { clearTimeout(t); child.off('message', onMessage); child.off('exit', onExit) }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}
const self = (role, ...rest) => [__filename, '--role', role, ...rest]

/** Binds `count` sockets in a binder child; returns the raw handles (held here, never accepted on). */
async function bind (mode, count) {
  const binder = track(spawn(process.execPath, self('binder', '--mode', mode, '--count', String(count)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const handles = []
  let port
  await new Promise((resolve, reject) => {
    binder.on('message', (m, handle) => {
      if (m.error) return reject(new Error('binder: ' + m.error))
      handles[m.slot] = handle
      port = m.port
      if (handles.filter(Boolean).length === count) resolve()
    })
    binder.once('exit', (code) => { if (handles.filter(Boolean).length < count) reject(new Error('binder exited ' + code)) })
  })
  await waitExit(binder)
  return { handles, port }
}

const REPO = require('node:path').join(__dirname, '..')
const SUPERVISED_APP = `'use strict'
const Fastify = require(require.resolve('fastify', { paths: [process.env.AB_REPO] }))
const app = Fastify({ logger: false, keepAliveTimeout: 30000 })
let connections = 0
app.server.on('connection', (socket) => { socket._abConn = connections++ })
app.register(require(process.env.AB_REPO), { connectionHandoff: process.env.AB_BALANCE !== 'off' })
app.get('/', (request, reply) => { reply.header('content-type', 'application/json').send('{"pid":' + process.pid + ',"c":' + request.raw.socket._abConn + '}') })
app.listen({ port: Number(process.env.AB_PORT), host: '127.0.0.1' })
setTimeout(() => process.exit(3), ${CHILD_DEADLINE_MS}).unref()
`

/**
 * supervisor: the real thing, \`fastify-hot-reload start --workers N\` on a minimal Fastify app with the
 * plugin (a socket per slot on Node ≥ 22.12, and the keep-alive balance, lib/supervisor/balance.ts).
 */
async function startSupervisor (n, balance) {
  const dir = fs.mkdtempSync(require('node:path').join(os.tmpdir(), 'ab-sup-'))
  fs.writeFileSync(require('node:path').join(dir, 'app.js'), SUPERVISED_APP)
  const port = await freePort(HOST)
  const control = require('node:path').join(dir, 'ctl.sock')
  const supervisor = track(spawn(process.execPath, [require('node:path').join(REPO, 'bin/fastify-hot-reload.js'), 'start', '--workers', String(n), '--control', control, '--', process.execPath, 'app.js'],
    { cwd: dir, env: { ...process.env, AB_PORT: String(port), AB_REPO: REPO, AB_BALANCE: balance ? 'on' : 'off' }, stdio: ['ignore', 'ignore', 'inherit'] }))
  const status = () => new Promise((resolve) => {
    const { execFile } = require('node:child_process')
    execFile(process.execPath, [require('node:path').join(REPO, 'bin/fastify-hot-reload.js'), 'status', '--control', control, '--json'], (err, stdout) => {
      try { resolve(err ? undefined : JSON.parse(stdout)) } catch { resolve(undefined) }
    })
  })
  let pids
  for (let i = 0; i < 100 && pids === undefined; i++) {
    await sleep(200)
    const now = await status()
    const serving = now?.workers.filter((w) => w.state === 'serving') ?? []
    if (serving.length === n) pids = serving.sort((a, b) => a.slot - b.slot).map((w) => w.pid)
  }
  if (pids === undefined) throw new Error('the supervisor did not serve with ' + n + ' workers')
  for (const pid of pids) started.add(pid)
  return {
    port,
    pids,
    async close () {
      try { process.kill(supervisor.pid, 'SIGTERM') } catch {}
      await waitExit(supervisor, 10_000)
      for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} started.delete(pid) }
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** One strategy's running workers: { port, pids, kill(slot, delay) → Promise<new pid>, close() }. */
async function startStrategy (strategy, n) {
  if (strategy.startsWith('supervisor')) return startSupervisor(n, strategy === 'supervisor')
  if (strategy.startsWith('cluster')) {
    const port = await freePort(HOST)
    const primary = track(spawn(process.execPath, self('cluster', '--workers', String(n), '--port', String(port), '--sched', strategy === 'cluster-none' ? 'none' : 'rr'),
      { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }))
    const { m } = await once(primary, (m) => m.ready, 'cluster ready')
    const pids = m.pids
    const all = [...pids]
    for (const pid of pids) started.add(pid)
    return {
      port,
      pids,
      async kill (slot, delay) {
        const respawned = once(primary, (m) => m.respawned, 'cluster respawn', 20_000)
        primary.send({ kill: slot, delay })
        const { m } = await respawned
        started.add(m.respawned)
        all.push(m.respawned)
        return m.respawned
      },
      async close () {
        for (const pid of all) { try { process.kill(pid, 'SIGKILL') } catch {} started.delete(pid) }
        try { process.kill(primary.pid, 'SIGKILL') } catch {}
        await waitExit(primary)
      }
    }
  }
  const perSlot = strategy.startsWith('reuseport')
  const { handles, port } = await bind(perSlot ? 'reuseport' : strategy, perSlot ? n : 1)
  const workers = []
  const spawnWorker = async (slot) => {
    const handle = handles[perSlot ? slot : 0]
    const w = track(spawn(process.execPath, self('worker'), { stdio: ['ignore', 'ignore', 'inherit', handle.fd, 'ipc'] }))
    workers[slot] = w
    await once(w, (m) => m.ready, 'worker ready')
    return w.pid
  }
  const pids = await Promise.all(Array.from({ length: n }, (_, i) => spawnWorker(i)))
  return {
    port,
    pids,
    async kill (slot, delay) {
      const w = workers[slot]
      const gone = waitExit(w)
      process.kill(w.pid, 'SIGKILL')
      await gone
      // reuseport+cover: the worker of the next slot accepts on this slot's socket until its new worker is ready.
      const cover = strategy === 'reuseport+cover' ? workers[(slot + 1) % n] : undefined
      cover?.send({ cover: true }, handles[slot])
      await sleep(delay)
      const pid = await spawnWorker(slot)
      cover?.send({ uncover: true })
      return pid
    },
    async close () {
      for (const w of workers) { try { process.kill(w.pid, 'SIGKILL') } catch {} }
      await Promise.all(workers.map((w) => waitExit(w)))
      for (const h of handles) h.close()
    }
  }
}

/** Runs the load generator; `during(measureStart)` runs alongside the measurement. */
async function load (port, kind, connections, { warmMs = 500, ms, timeline = false, during } = {}) {
  const child = track(spawn(process.execPath, self('load', '--port', String(port), '--kind', kind, '--connections', String(connections),
    '--warm-ms', String(warmMs), '--ms', String(ms), ...(timeline ? ['--timeline'] : [])), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const resultP = once(child, (m) => m.result, 'load result', warmMs + ms + 30_000)
  if (during) {
    await once(child, (m) => m.measuring, 'load measuring', warmMs + 10_000)
    await during()
  }
  const { m } = await resultP
  await waitExit(child)
  return m.result
}

function shares (counts, pids) {
  const total = pids.reduce((a, pid) => a + (counts[pid] || 0), 0)
  const fractions = pids.map((pid) => total === 0 ? 0 : (counts[pid] || 0) / total * pids.length)
  return { min: Math.min(...fractions), max: Math.max(...fractions) }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const f2 = (x) => x.toFixed(2)

function reusePortSupported () {
  const [major, minor] = process.versions.node.split('.').map(Number)
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12)
}

async function balance ({ workerCounts, rounds, seconds, strategies }) {
  const loads = ['close', 'keep-alive']
  const cells = [] // { round, n, load, strategy, result, pids }
  for (let round = 0; round < rounds; round++) {
    for (const n of workerCounts) {
      const order = strategies.map((_, i) => strategies[(i + round) % strategies.length])
      for (const strategy of order) {
        const s = await startStrategy(strategy, n)
        try {
          for (const kind of loads) {
            const connections = kind === 'close' ? 20 : 10 * n
            const result = await load(s.port, kind, connections, { ms: seconds * 1000 })
            cells.push({ round, n, load: kind, strategy, pids: s.pids, result })
            const sh = shares(result.perPid, s.pids)
            process.stderr.write(`round ${round + 1} N=${n} ${strategy} ${kind}: ${Math.round(result.rps)} req/s, share ${f2(sh.min)}–${f2(sh.max)}, errors ${result.errors}\n`)
          }
        } finally {
          await s.close()
        }
      }
    }
  }
  return cells
}

function balanceTable (cells, strategies, workerCounts) {
  const lines = [
    '| N | load | strategy | req/s ÷ cluster-rr (median [lowest–highest round]) | requests per worker ×1/N (lowest–highest, all rounds) | connections per worker ×1/N (all rounds) | ±25% every round | p99 ms (median of rounds) | errors |',
    '|---|---|---|---|---|---|---|---|---|'
  ]
  const summary = []
  for (const n of workerCounts) {
    for (const kind of ['close', 'keep-alive']) {
      for (const strategy of strategies) {
        const mine = cells.filter((c) => c.n === n && c.load === kind && c.strategy === strategy)
        if (mine.length === 0) continue
        const ratios = mine.map((c) => {
          const base = cells.find((b) => b.n === n && b.load === kind && b.strategy === 'cluster-rr' && b.round === c.round)
          return base ? c.result.rps / base.result.rps : NaN
        })
        const req = mine.map((c) => shares(c.result.perPid, c.pids))
        const conn = mine.map((c) => shares(c.result.connsPerPid, c.pids))
        const reqMin = Math.min(...req.map((s) => s.min))
        const reqMax = Math.max(...req.map((s) => s.max))
        const connMin = Math.min(...conn.map((s) => s.min))
        const connMax = Math.max(...conn.map((s) => s.max))
        const pass = reqMin >= 0.75 && reqMax <= 1.25
        const errors = mine.reduce((a, c) => a + c.result.errors, 0)
        const medianRps = median(mine.map((c) => c.result.rps))
        summary.push({ n, load: kind, strategy, ratio: median(ratios), ratios, medianRps, reqMin, reqMax, connMin, connMax, pass, errors, perRound: mine.map((c, i) => ({ rps: c.result.rps, req: req[i], conn: conn[i], p99: c.result.p99 })) })
        lines.push(`| ${n} | ${kind === 'close' ? 'connection per request (20 clients)' : `keep-alive (${10 * n} connections)`} | ${strategy} | ` +
          `${f2(median(ratios))} [${f2(Math.min(...ratios))}–${f2(Math.max(...ratios))}] | ${f2(reqMin)}–${f2(reqMax)} | ` +
          `${kind === 'close' ? '(= requests)' : `${f2(connMin)}–${f2(connMax)}`} | ${pass ? '✓' : '✗'} | ${Math.round(median(mine.map((c) => c.result.p99)))} | ${errors} |`)
      }
    }
  }
  return { markdown: lines.join('\n'), summary }
}

/** How evenly each strategy spreads 10×N connections opened at once (no load): many trials. */
async function connectionTrials ({ workerCounts, strategies, trials }) {
  const out = []
  for (const n of workerCounts) {
    for (const strategy of strategies) {
      const s = await startStrategy(strategy, n)
      try {
        const child = track(spawn(process.execPath, self('load', '--port', String(s.port), '--kind', 'trials', '--connections', String(10 * n), '--trials', String(trials)),
          { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
        const { m } = await once(child, (m) => m.result, 'trials', 60_000)
        await waitExit(child)
        const sh = m.result.trials.map((perPid) => shares(perPid, s.pids))
        const within = sh.filter((x) => x.min >= 0.75 && x.max <= 1.25).length
        out.push({ n, strategy, trials: sh.length, within, worstMin: Math.min(...sh.map((x) => x.min)), worstMax: Math.max(...sh.map((x) => x.max)), medianMin: median(sh.map((x) => x.min)), medianMax: median(sh.map((x) => x.max)) })
        process.stderr.write(`trials N=${n} ${strategy}: ${within}/${sh.length} within ±25%\n`)
      } finally {
        await s.close()
      }
    }
  }
  return out
}

function binomialWithin (n, c) {
  // Probability that c connections, each sent to one of n workers uniformly at random, give every
  // worker between 0.75·c/n and 1.25·c/n of them (exact, multinomial).
  const lo = Math.ceil(0.75 * c / n - 1e-9)
  const hi = Math.floor(1.25 * c / n + 1e-9)
  const logFact = [0]
  for (let i = 1; i <= c; i++) logFact[i] = logFact[i - 1] + Math.log(i)
  let p = 0
  const walk = (left, slots, logCoef) => {
    if (slots === 1) {
      if (left >= lo && left <= hi) p += Math.exp(logCoef - logFact[left] - c * Math.log(n))
      return
    }
    for (let k = lo; k <= Math.min(hi, left); k++) walk(left - k, slots - 1, logCoef - logFact[k])
  }
  walk(c, n, logFact[c])
  return p
}

function trialsTable (rows) {
  const lines = [
    '| N | strategy | 10×N connections opened at once: trials with every worker within ±25% | median trial: lowest–highest ×1/N | worst trial |',
    '|---|---|---|---|---|'
  ]
  for (const r of rows) {
    lines.push(`| ${r.n} | ${r.strategy} | ${r.within}/${r.trials} (${Math.round(100 * r.within / r.trials)}%)${r.strategy === 'reuseport' ? `; a uniform random hash: ${Math.round(100 * binomialWithin(r.n, 10 * r.n))}%` : ''} | ${f2(r.medianMin)}–${f2(r.medianMax)} | ${f2(r.worstMin)}–${f2(r.worstMax)} |`)
  }
  return lines.join('\n')
}

async function restartScenario ({ rounds, strategies }) {
  const n = 2
  const delays = [0, 1000]
  const runs = []
  for (let round = 0; round < rounds; round++) {
    for (const kind of ['close', 'keep-alive']) {
      for (const delay of delays) {
        for (const strategy of strategies) {
          const s = await startStrategy(strategy, n)
          let killedAt = 0
          let respawnedAt = 0
          try {
            const connections = kind === 'close' ? 20 : 10 * n
            let t0 = 0
            const result = await load(s.port, kind, connections, {
              ms: 4000,
              timeline: true,
              during: async () => {
                t0 = performance.now()
                await sleep(1500)
                killedAt = performance.now() - t0
                await s.kill(1, delay)
                respawnedAt = performance.now() - t0
              }
            })
            const ev = result.events
            const stalled = ev.filter((e) => e[1] > 200).length
            const failed = ev.filter((e) => !e[2]).length
            const before = ev.filter((e) => e[2] && e[0] + e[1] >= killedAt - 1000 && e[0] + e[1] < killedAt).length
            const gap = Math.max(respawnedAt - killedAt, 1)
            const inGap = ev.filter((e) => e[2] && e[0] + e[1] >= killedAt && e[0] + e[1] < respawnedAt).length
            const maxLatency = Math.max(...ev.map((e) => e[1]))
            runs.push({ round, load: kind, delay, strategy, failed, stalled, maxLatency, gapMs: gap, rateInGap: (inGap / gap * 1000) / before, errorCodes: result.errorCodes })
            process.stderr.write(`restart round ${round + 1} ${strategy} ${kind} delay ${delay}: failed ${failed} ${JSON.stringify(result.errorCodes)}, >200 ms ${stalled}, max ${Math.round(maxLatency)} ms, gap ${Math.round(gap)} ms at ${f2((inGap / gap * 1000) / before)} of the rate before\n`)
          } finally {
            await s.close()
          }
        }
      }
    }
  }
  return runs
}

function restartTable (runs, strategies) {
  const lines = [
    '| load | restart after | strategy | failed requests (per run) | requests > 200 ms (per run) | slowest request (ms) | rate while slot 1 has no worker ÷ rate before |',
    '|---|---|---|---|---|---|---|'
  ]
  for (const kind of ['close', 'keep-alive']) {
    for (const delay of [0, 1000]) {
      for (const strategy of strategies) {
        const mine = runs.filter((r) => r.load === kind && r.delay === delay && r.strategy === strategy)
        if (mine.length === 0) continue
        const list = (key, fmt = String) => mine.map((r) => fmt(r[key])).join(', ')
        lines.push(`| ${kind === 'close' ? 'connection per request (20)' : 'keep-alive (20)'} | ${delay === 0 ? 'at once (gap ' + mine.map((r) => Math.round(r.gapMs)).join(', ') + ' ms)' : delay + ' ms (gap ' + mine.map((r) => Math.round(r.gapMs)).join(', ') + ' ms)'} | ${strategy} | ` +
          `${list('failed')} | ${list('stalled')} | ${list('maxLatency', Math.round)} | ${list('rateInGap', f2)} |`)
      }
    }
  }
  return lines.join('\n')
}

async function main () {
  const workerCounts = arg('--workers') ? [Number(arg('--workers'))] : [2, 3]
  const rounds = Number(arg('--rounds', 3))
  const seconds = Number(arg('--seconds', 3))
  const reuse = reusePortSupported()
  const strategies = arg('--strategies')?.split(',') ?? ['cluster-rr', 'shared', ...(reuse ? ['reuseport'] : []), 'cluster-none', 'supervisor']
  const began = Date.now()
  const watchdog = setTimeout(() => { process.stderr.write('accept-balance: global deadline reached\n'); killEverything(); process.exit(2) }, 20 * 60_000)
  watchdog.unref()
  const header = [
    `Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0].model.trim()}), load average at start ${os.loadavg().map(f2).join(' ')}, ${new Date().toISOString()}.`,
    `Workers and the load generator (one process, undici Pool) share the same ${os.cpus().length} cores: with N ≥ ${os.cpus().length} the load generator competes with the workers for CPU, and cluster's primary (which accepts every connection and passes it on) competes too. Compare ratios within a round, not absolute requests/s.`,
    reuse ? '' : `reuseport skipped: Node ${process.version} has no listen({ reusePort }) (needs 22.12+ / 23.1+).`
  ].filter(Boolean).join('\n')
  process.stderr.write(header + '\n')
  const only = arg('--only') // balance | trials | restart (one part alone)
  const cells = !only || only === 'balance' ? await balance({ workerCounts, rounds, seconds, strategies }) : []
  const table = balanceTable(cells, strategies, workerCounts)
  const trialRows = !only || only === 'trials' ? await connectionTrials({ workerCounts, strategies: strategies.filter((x) => !x.startsWith('supervisor')), trials: Number(arg('--trials', 100)) }) : []
  const trials = trialsTable(trialRows)
  let restart = null
  let restartRuns = null
  if ((!only && !has('--no-restart')) || only === 'restart') {
    const rs = arg('--restart-strategies')?.split(',') ?? ['shared', ...(reuse ? ['reuseport', 'reuseport+cover'] : []), 'cluster-rr']
    restartRuns = await restartScenario({ rounds: Number(arg('--restart-rounds', 2)), strategies: rs })
    restart = restartTable(restartRuns, rs)
  }
  const out = [header, '', table.markdown, '', trials, ...(restart ? ['', 'Slot 1\'s worker killed (SIGKILL) under load, N = 2, 1.5 s into a 4 s window; a new worker started for the slot at once or 1 s later:', '', restart] : []),
    '', `Run: ${Math.round((Date.now() - began) / 1000)} s, ${rounds} rounds × ${seconds} s per cell.`].join('\n')
  console.log(out)
  if (arg('--json')) fs.writeFileSync(arg('--json'), JSON.stringify({ node: process.version, cpus: os.cpus().length, summary: table.summary, trials: trialRows, restart: restartRuns }, null, 2))
}

const role = arg('--role')
if (role === 'worker') runWorker()
else if (role === 'binder') runBinder()
else if (role === 'cluster') runClusterPrimary()
else if (role === 'load') runLoad()
else {
  process.on('exit', killEverything)
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killEverything(); process.exit(130) })
  main().catch((err) => { console.error(err); killEverything(); process.exitCode = 1 }).finally(killEverything)
}

'use strict'
// The plugin in a worker of node:cluster, and in PM2 cluster mode (which is node:cluster): the
// primary owns the listening sockets and decides when workers come and go, so a worker has no
// socket to hand to a successor and must never become a supervisor (keepPid). Each worker says so
// once at start, keeps its pid, answers a reload (signal or API) with HOT_RELOAD_UNSUPPORTED while
// it goes on serving, and drains at SIGTERM as usual.
const path = require('node:path')
const { test } = require('tap')
const { REPO, Service, descendantsOf, runsSupervisor, isAlive, tempDir, waitFor, waitUntilGone, writeRelease, sleep } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')
const { usePm2 } = require('./helpers/pm2')
const { freePort } = require('../tools/free-port')

const PRIMARY = path.join(__dirname, 'fixtures', 'cluster-primary.js')
const PLUGIN = { idleGrace: 300, drainTimeout: 5000, readyTimeout: 20000, probation: 500 }
// keepPid asked for: a cluster worker must decline it all the same.
const KEEP = { FASTIFY_HOT_RELOAD_KEEP_PID: '1' }


test('node:cluster: each worker keeps its pid, refuses reloads with HOT_RELOAD_UNSUPPORTED while serving (0 failed), drains at SIGTERM', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const port = await freePort()
  const service = Service.start(t, { cwd: dir, script: PRIMARY, env: { ...KEEP, PORT: String(port), CLUSTER_WORKERS: '2' } })
  const serving = await service.waitForLines((l) => l.hotReloadEvent === 'serving', 2, 20000, 'both workers serving')
  const workers = [...new Set(serving.map((l) => l.pid))]
  t.equal(workers.length, 2, 'two workers serve')
  t.same(descendantsOf(service.pid).sort(), [...workers].sort(), 'the primary\'s children are those two workers, nothing else started')
  for (const pid of workers) {
    t.notOk(runsSupervisor(pid), `worker ${pid} did not become a supervisor`)
    t.ok(service.find((l) => l.pid === pid && l.hotReload === 'reload-unsupported' && l.mode === 'cluster-worker'), `worker ${pid} said at start that it does not reload`)
    t.ok(service.find((l) => l.pid === pid && l.keepPid === false), `worker ${pid} says keepPid does not apply`)
  }

  const load = startLoad(t, { host: '127.0.0.1', port }, { connections: 10, keepAlive: true })
  await sleep(300)
  // A reload signal to each worker, then reload() through the API.
  for (const pid of workers) process.kill(pid, 'SIGUSR2')
  await service.waitForLines((l) => l.hotReload === 'reload-ignored', 2, 10000, 'both workers ignoring the signal')
  const response = await fetch(`http://127.0.0.1:${port}/admin/reload`, { method: 'POST' })
  const result = await response.json()
  t.equal(result.ok, false, 'reload() does not succeed')
  t.equal(result.error.code, 'HOT_RELOAD_UNSUPPORTED', 'and says why, with its code')
  await sleep(500)
  const stats = await load.stop()
  t.comment(JSON.stringify(stats))
  t.equal(stats.failed, 0, 'no request failed')
  t.same(Object.keys(stats.perPid).map(Number).sort(), [...workers].sort(), 'the same two workers answered every request')
  t.notOk(service.find((l) => l.hotReload === 'reload-started'), 'no successor was ever started')
  for (const pid of workers) t.ok(isAlive(pid), `worker ${pid} still runs`)

  process.kill(service.pid, 'SIGTERM')
  t.same(await service.exit, { code: 0, signal: null }, 'the primary exits 0 once its workers have')
  const exits = service.filter((l) => l.primary === 'worker-exit')
  t.same(exits.map((l) => [l.code, l.signal]), [[0, null], [0, null]], 'each worker drained and exited 0')
  t.equal(service.filter((l) => l.event === 'onClose-ran').length, 2, 'each worker ran the app\'s onClose hooks')
  for (const pid of workers) await waitUntilGone(pid, 10000)
})

test('PM2 cluster mode: the workers keep their pids and PM2 counts no restart; pm2 reload replaces them', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const port = await freePort()
  const { pm2 } = usePm2(t, dir, { PORT: String(port), ...KEEP })
  const started = await pm2('start', path.join(REPO, 'test/fixtures/app.js'), '--name', 'cl', '-i', '2')
  t.equal(started.code, 0, `pm2 start -i 2 ${started.stderr}`)
  const list = async () => JSON.parse((await pm2('jlist')).stdout).filter((app) => app.name === 'cl')
  const online = (apps) => apps.length === 2 && apps.every((app) => app.pid > 0 && app.pm2_env.status === 'online') ? apps : undefined
  const first = await waitFor(async () => online(await list()), 20000, 'two PM2 cluster instances online', 200)
  t.equal(first[0].pm2_env.exec_mode, 'cluster_mode', 'PM2 runs them in cluster mode')
  const healthy = async () => { try { return (await fetch(`http://127.0.0.1:${port}/health`)).status === 200 || undefined } catch { return undefined } }
  await waitFor(healthy, 20000, 'the app to answer', 200)
  await sleep(1000) // a worker that replaced itself would have lost PM2's channel by now
  const later = await list()
  t.same(later.map((app) => [app.pid, app.pm2_env.status, app.pm2_env.restart_time]).sort(), first.map((app) => [app.pid, 'online', 0]).sort(),
    'PM2: the same two pids, online, never restarted')
  for (const app of later) t.notOk(runsSupervisor(app.pid), `worker ${app.pid} did not become a supervisor`)

  const reloaded = await pm2('reload', 'cl')
  t.equal(reloaded.code, 0, `pm2 reload ${reloaded.stderr}`)
  const after = await waitFor(async () => { const apps = online(await list()); return apps && apps.every((app) => !first.some((old) => old.pid === app.pid)) ? apps : undefined }, 30000, 'two new instances after pm2 reload', 200)
  t.equal(after.length, 2, 'pm2 reload: two new workers online')
  const answer = await (await fetch(`http://127.0.0.1:${port}/`)).json()
  t.ok(after.some((app) => app.pid === answer.pid), 'a new worker answers')
  const pids = after.map((app) => app.pid)
  const stopped = await pm2('delete', 'cl')
  t.equal(stopped.code, 0, 'pm2 delete')
  for (const pid of [...pids, ...first.map((app) => app.pid)]) await waitUntilGone(pid, 15000)
  t.pass('every worker is gone')
})

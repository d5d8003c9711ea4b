'use strict'
// Two Fastify instances in one process (a public app and an admin server on another port), both
// with the plugin: one reload moves both to the new release, under load on both ports, standalone
// and under the supervisor; a broken release leaves the old process serving both; SIGTERM drains
// both; an instance the app closes itself is no longer handed on.
const http = require('node:http')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { REPO, Service, cli, startSupervised, tempDir, writeRelease, waitFor, waitUntilGone, isAlive, sleep } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')
const { freePort } = require('../tools/free-port')

// Two tests at a time: the broken releases, SIGTERM and closed-admin tests wait mostly on boots and
// drains, so their waits overlap. Each has its own service and ports. The two with load on both
// ports over chained reloads run alone.
tap.jobs = 2

const SCRIPT = path.join(REPO, 'test/fixtures/two-apps.js')
// A short probation: the chains below wait for each old generation to be gone, which it is only once
// its successor's probation is over too (2 s by default); the probation is not what they test.
const PLUGIN = { idleGrace: 300, drainTimeout: 10000, readyTimeout: 20000, probation: 300 }

/**
 * One request on a connection of its own, closed after it (no idle keep-alive connection of the
 * test's own is left for a drain to move).
 */
function get (port, urlPath = '/', { method = 'GET' } = {}) {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path: urlPath, method, agent: false, timeout: 15000 }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => {
        try { resolve({ status: response.statusCode, body: JSON.parse(body) }) } catch (err) { reject(err) }
      })
    })
    request.on('timeout', () => request.destroy(new Error('timed out')))
    request.on('error', reject)
    request.end()
  })
}

/** A directory with release 1 and two free ports. */
async function setup (t) {
  const dir = tempDir(t)
  const ports = { port: await freePort(), adminPort: await freePort() }
  const release = (version, extra = {}) => writeRelease(dir, { version, plugin: PLUGIN, ...ports, ...extra })
  release(1)
  return { dir, ports, release }
}

/** Waits until both instances of generation `n` said 'serving'; resolves with the pid. */
async function bothServing (service, n, timeoutMs = 30000) {
  const app = await service.waitForEvent('serving', (l) => l.generation === n && l.instance === 'app', timeoutMs)
  const admin = await service.waitForEvent('serving', (l) => l.generation === n && l.instance === 'admin', timeoutMs)
  return admin.pid === app.pid ? app.pid : undefined
}

/** Keep-alive load on both ports. */
function loadBoth (t, ports) {
  return {
    app: startLoad(t, { host: '127.0.0.1', port: ports.port }, { connections: 10, keepAlive: true }),
    admin: startLoad(t, { host: '127.0.0.1', port: ports.adminPort }, { connections: 6, keepAlive: true })
  }
}

async function stopLoads (t, loads, versions) {
  for (const [name, load] of Object.entries(loads)) {
    const stats = await load.stop()
    t.comment(`${name}: ${JSON.stringify({ ...stats, pids: [...stats.pids] })}`)
    t.equal(stats.failed, 0, `${name}: no request failed (refused, reset, timeout)`)
    t.same(stats.errors, {}, `${name}: no client errors`)
    t.equal(stats.non2xx, 0, `${name}: no non-2xx response`)
    t.ok(stats.ok > 100, `${name}: load ran (${stats.ok} requests)`)
    for (const version of versions) t.ok(stats.versions[version] > 0, `${name}: version ${version} was served`)
  }
}

async function bothAnswer (t, ports, version, pid) {
  for (const [instance, port] of [['app', ports.port], ['admin', ports.adminPort]]) {
    t.match((await get(port)).body, { version, pid, instance }, `${instance} (port ${port}) is served by version ${version}, pid ${pid}`)
    t.match((await get(port, '/health')).body, { ready: true, state: 'serving', pid }, `${instance}'s readiness says serving`)
  }
}

test('standalone: chained reloads under load on both ports, by signal and by either instance\'s reload(): 0 failed, both ports move', { buffered: false }, async (t) => {
  const { dir, ports, release } = await setup(t)
  const service = Service.start(t, { cwd: dir, script: SCRIPT })
  let pid = await bothServing(service, 1)
  t.equal(pid, service.pid)
  const loads = loadBoth(t, ports)
  await sleep(300)
  const how = { 2: 'SIGUSR2', 3: 'admin', 4: 'app' }
  for (let version = 2; version <= 4; version++) {
    release(version)
    if (how[version] === 'SIGUSR2') {
      process.kill(pid, 'SIGUSR2')
    } else {
      const port = how[version] === 'admin' ? ports.adminPort : ports.port
      const { body } = await get(port, '/reload', { method: 'POST' })
      t.match(body, { ok: true, generation: version }, `reload() on the ${how[version]} instance`)
    }
    const next = await bothServing(service, version)
    t.ok(next !== undefined && next !== pid, `generation ${version} serves on both instances in one new process`)
    await waitUntilGone(pid)
    pid = next
    await sleep(300)
  }
  await stopLoads(t, loads, [1, 2, 3, 4])
  await bothAnswer(t, ports, 4, pid)
  t.same(service.alive(), [pid], 'only the last generation is left')
  const closed = service.filter((l) => l.event === 'onClose-ran').map((l) => `${l.instance}${l.version}`).sort()
  t.same(closed, ['admin1', 'admin2', 'admin3', 'app1', 'app2', 'app3'], 'every old generation ran both instances\' onClose')
  const drained = service.events('drained')
  t.equal(drained.length, 6, 'each old generation said drained on both instances')
  t.same(drained.filter((l) => l.cutConnections !== 0 || l.reason !== 'reload'), [], 'no drain had to cut connections')
  const reloaded = service.events('reloaded')
  t.equal(reloaded.length, 6, 'each reload was one reload, told to both instances')
  t.equal(new Set(reloaded.map((l) => l.generation)).size, 3)
})

test('supervised: reloads under load on both ports; the supervisor hands every socket to the next worker', { buffered: false }, async (t) => {
  const dir = tempDir(t)
  const ports = { port: await freePort(), adminPort: await freePort() }
  writeRelease(dir, { version: 1, plugin: PLUGIN, ...ports })
  const { control, service } = startSupervised(t, { dir, script: SCRIPT, extra: ['--probation', '300'] })
  const first = await bothServing(service, 1)
  t.ok(first !== undefined && first !== service.pid, 'a worker serves both instances')
  const loads = loadBoth(t, ports)
  await sleep(300)
  let pid = first
  for (let version = 2; version <= 3; version++) {
    writeRelease(dir, { version, plugin: PLUGIN, ...ports })
    const reload = await cli(['reload', '--control', control, '--json'])
    t.equal(reload.code, 0, `reload to ${version}: ${reload.stdout}${reload.stderr}`)
    const next = await bothServing(service, version)
    t.ok(next !== undefined && next !== pid, `worker of generation ${version} serves both instances`)
    await waitUntilGone(pid)
    pid = next
    await sleep(300)
  }
  // A reload asked of the admin instance goes to the supervisor too.
  writeRelease(dir, { version: 4, plugin: PLUGIN, ...ports })
  t.match((await get(ports.adminPort, '/reload', { method: 'POST' })).body, { ok: true, generation: 4 })
  const last = await bothServing(service, 4)
  await waitUntilGone(pid)
  await stopLoads(t, loads, [1, 2, 3, 4])
  await bothAnswer(t, ports, 4, last)
  const status = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.same(status.sockets.sort(), [`127.0.0.1:${ports.port}`, `127.0.0.1:${ports.adminPort}`].sort(), 'the supervisor holds both instances\' sockets')
  t.equal(status.generation, 4)
  t.ok(isAlive(service.pid), 'the supervisor\'s pid is stable')
  process.kill(service.pid, 'SIGTERM')
  t.equal((await service.exit).code, 0, 'the supervisor stops cleanly')
})

test('broken releases: the admin instance throws at boot, or listens elsewhere (an inherited socket unclaimed): the old process serves both ports on', async (t) => {
  const { dir, ports, release } = await setup(t)
  const service = Service.start(t, { cwd: dir, script: SCRIPT })
  const pid = await bothServing(service, 1)
  const loads = loadBoth(t, ports)
  await sleep(300)

  release(2, { adminThrows: true })
  const thrown = (await get(ports.port, '/reload', { method: 'POST' })).body
  t.match(thrown, { ok: false, error: { code: 'HOT_RELOAD_SUCCESSOR_EXITED' } }, 'the successor died before it was ready')

  const elsewhere = await freePort()
  release(3, { adminPort: elsewhere })
  const unclaimed = (await get(ports.adminPort, '/reload', { method: 'POST' })).body
  t.match(unclaimed, { ok: false, error: { code: 'HOT_RELOAD_UNCLAIMED_SOCKET', message: new RegExp(`127\\.0\\.0\\.1:${ports.adminPort}.*not claimed`) } },
    'the successor says the admin socket went unclaimed')
  await waitFor(() => service.events('reloadFailed').length >= 4, 10000, 'reloadFailed on both instances, twice')
  t.same(service.events('reloadFailed').map((l) => l.instance).sort(), ['admin', 'admin', 'app', 'app'])

  await sleep(500)
  await stopLoads(t, loads, [1])
  t.same(service.alive(), [pid], 'only the old process is left: the failed successors are gone')
  await bothAnswer(t, ports, 1, pid)
  await t.rejects(get(elsewhere), 'nothing is left listening where the broken release tried')
  t.same(service.events('draining').filter((l) => l.pid === pid), [], 'the old process never drained')
})

test('SIGTERM drains both instances: requests in flight on each port finish, both onClose hooks run, exit 0', async (t) => {
  const { dir, ports } = await setup(t)
  const service = Service.start(t, { cwd: dir, script: SCRIPT })
  await bothServing(service, 1)
  const slow = [get(ports.port, '/slow?ms=1000'), get(ports.adminPort, '/slow?ms=1000')]
  await sleep(200)
  process.kill(service.pid, 'SIGTERM')
  const answers = await Promise.all(slow)
  t.match(answers.map((a) => a.body), [{ instance: 'app', slow: true }, { instance: 'admin', slow: true }], 'both requests in flight got their answer')
  t.same(await service.exit, { code: 0, signal: null })
  t.same(service.events('drained').map((l) => `${l.instance}:${l.reason}`).sort(), ['admin:shutdown', 'app:shutdown'])
  t.same(service.filter((l) => l.event === 'onClose-ran').map((l) => l.instance).sort(), ['admin', 'app'])
})

test('the app closes its admin instance itself: the public one serves on, and a reload no longer hands the admin socket on', async (t) => {
  const { dir, ports, release } = await setup(t)
  const service = Service.start(t, { cwd: dir, script: SCRIPT })
  const pid = await bothServing(service, 1)
  await get(ports.adminPort, '/close', { method: 'POST' })
  await service.waitForLine((l) => l.event === 'onClose-ran' && l.instance === 'admin')
  await t.rejects(get(ports.adminPort), 'the admin port is closed')
  t.match((await get(ports.port, '/health')).body, { ready: true, state: 'serving' }, 'the public instance serves on')
  const load = startLoad(t, { host: '127.0.0.1', port: ports.port }, { connections: 10, keepAlive: true })
  await sleep(300)
  release(2)
  process.kill(pid, 'SIGUSR2')
  const next = await bothServing(service, 2)
  t.ok(next !== undefined && next !== pid)
  await waitUntilGone(pid)
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed on the public port')
  t.ok(stats.versions[1] > 0 && stats.versions[2] > 0)
  // Only the public socket was handed on (one instance); the new admin instance bound its port afresh.
  await bothAnswer(t, ports, 2, next)
})

'use strict'
// The probes beside the app's own global hooks and plugins: an auth check that does not let them
// through makes a successor's readiness check fail at once, saying why (not at readyTimeout), and
// one that skips routes marked `hotReloadProbe` works; a global @fastify/rate-limit (the real one)
// never answers a probe 429.
const tap = require('tap')
const { test } = tap
const { Service, cli, startSupervised, servingTarget, tempDir, writeRelease, isAlive } = require('./helpers/processes')
const { requestJson } = require('./helpers/http')

tap.jobs = 2

const PLUGIN = { idleGrace: 300, readyTimeout: 20000 }

const get = (target, route, headers) => requestJson(target, route, { headers })

const AUTH = { authorization: 'Bearer secret' }

test('an auth hook that answers the probes 401: a reload fails at once, saying so; the old generation serves on', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, authHook: 'all' })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  writeRelease(dir, { version: 2, plugin: PLUGIN, authHook: 'all' })
  const asked = Date.now()
  process.kill(service.pid, 'SIGUSR2')
  const failed = await service.waitForEvent('reloadFailed', () => true, 15000)
  t.equal(failed.error.code, 'HOT_RELOAD_SUCCESSOR_FAILED', 'the successor said it failed')
  t.match(failed.error.message, /answered 401/, 'and what its readiness route answered')
  t.ok(Date.now() - asked < PLUGIN.readyTimeout, 'before readyTimeout')
  t.notOk(isAlive(failed.successorPid), 'the successor is gone')
  const answer = await get(target, '/', AUTH)
  t.same([answer.status, answer.body.version, answer.body.pid], [200, 1, service.pid], 'generation 1 serves on')
})

test('supervised: the first generation behind such a hook fails its start at once; one that lets the probes through (hotReloadProbe) starts and reloads', async (t) => {
  const refused = startSupervised(t)
  writeRelease(refused.dir, { version: 1, plugin: PLUGIN, authHook: 'all' })
  const started = Date.now()
  const exit = await refused.service.exit
  t.equal(exit.code, 1, 'the supervisor exits 1')
  t.ok(Date.now() - started < 10000, 'without waiting for --ready-timeout (10 s)')
  t.ok(refused.service.find((l) => l.hotReload === 'readiness-refused'), 'the worker said why')
  const failed = refused.service.find((l) => l.supervisor === 'generation-failed')
  t.equal(failed?.error?.code, 'HOT_RELOAD_SUCCESSOR_FAILED', 'and the supervisor heard it (not only that it exited)')
  t.match(failed?.error?.message, /answered 401/, 'with the reason')
  const stopping = refused.service.find((l) => l.supervisor === 'stopping')
  t.equal(stopping?.signal, undefined, 'its stop names no signal: none came')
  t.type(stopping?.reason, 'string', 'it says why it stops instead')

  const { dir, control, service } = startSupervised(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, authHook: 'except-probes' })
  const target = await servingTarget(service)
  t.equal((await get(target, '/health')).status, 200, 'readiness answers without credentials')
  t.equal((await get(target, '/')).status, 401, 'the app\'s routes still ask for them')
  writeRelease(dir, { version: 2, plugin: PLUGIN, authHook: 'except-probes' })
  const reload = await cli(['reload', '--control', control, '--json'])
  t.equal(reload.code, 0, 'a reload succeeds')
  t.equal((await get(target, '/', AUTH)).body.version, 2, 'release 2 serves')
})

test('a global @fastify/rate-limit does not limit the probes: 30 of each answered 200 while the app\'s route is limited', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, rateLimit: { max: 3, timeWindow: 60000 } })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  const statuses = { '/health': [], '/health/live': [], '/': [] }
  for (let i = 0; i < 30; i++) {
    for (const path of Object.keys(statuses)) statuses[path].push((await get(target, path)).status)
  }
  t.ok(statuses['/'].includes(429), 'the rate limit is in force on the app\'s route')
  t.same([...new Set(statuses['/health'])], [200], 'readiness: 200 every time')
  t.same([...new Set(statuses['/health/live'])], [200], 'liveness: 200 every time')
  writeRelease(dir, { version: 2, plugin: PLUGIN, rateLimit: { max: 3, timeWindow: 60000 } })
  process.kill(service.pid, 'SIGUSR2')
  t.ok(await service.generationServing(2), 'a reload succeeds (its readiness check is not limited either)')
})

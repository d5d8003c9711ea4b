'use strict'
// The public surface, in-process: exports, the decorator, routes, signals. Reloads themselves are
// tested with real processes in the other files.
const { execFileSync } = require('node:child_process')
const { test } = require('tap')
const Fastify = require('fastify')
const fs = require('node:fs')
const { REPO, vanishingExecutable } = require('./helpers/processes')
const hotReload = require('..')

test('require() gives the plugin, also as .default and .hotReload; ESM import works', async (t) => {
  t.comment(`running on Node ${process.version}`)
  t.type(hotReload, 'function')
  t.equal(hotReload.default, hotReload)
  t.equal(hotReload.hotReload, hotReload)
  const esm = execFileSync(process.execPath, ['--input-type=module', '-e',
    `import hotReload from ${JSON.stringify(REPO + '/dist/index.js')}; console.log(typeof hotReload, hotReload === hotReload.default)`
  ], { encoding: 'utf8', timeout: 20000 })
  t.equal(esm.trim(), 'function true')
})

async function listeningApp (t, options = {}) {
  const app = Fastify()
  app.register(hotReload, { gracefulShutdown: false, ...options })
  app.get('/', async () => 'hello')
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

test('the decorator: generation, state, pid, events', async (t) => {
  const app = Fastify()
  app.register(hotReload, { gracefulShutdown: false })
  await app.ready()
  t.equal(app.hotReload.generation, 1)
  t.equal(app.hotReload.state, 'starting')
  t.equal(app.hotReload.pid, process.pid)
  const states = []
  app.hotReload.on('state', (state, previous) => states.push(`${previous}->${state}`))
  const early = await app.hotReload.reload()
  t.equal(early.ok, false, 'no reload before listening')
  t.equal(early.error.code, 'HOT_RELOAD_NOT_SERVING')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal(app.hotReload.state, 'serving')
  await app.close()
  t.same(states, ['starting->serving', 'serving->closed'])
})

test('reload() with a successor that cannot start resolves ok: false and keeps serving', async (t) => {
  const execPath = vanishingExecutable(t)
  const app = await listeningApp(t, { successor: { execPath } })
  fs.rmSync(execPath)
  const events = []
  for (const name of ['reloading', 'reloaded', 'reloadFailed']) app.hotReload.on(name, () => events.push(name))
  const result = await app.hotReload.reload()
  t.equal(result.ok, false)
  t.equal(result.error.code, 'HOT_RELOAD_SPAWN_FAILED')
  t.ok(result.error.message.includes(execPath), 'the message names the executable')
  t.equal(result.generation, 1)
  t.equal(result.pid, process.pid)
  t.type(result.durationMs, 'number')
  t.same(events, ['reloading', 'reloadFailed'])
  t.equal(app.hotReload.state, 'serving')
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
})

test('/health and /health/live', async (t) => {
  const app = await listeningApp(t)
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
  t.match(health.json(), { status: 'ok', ready: true, pid: process.pid, generation: 1, state: 'serving' })
  const live = await app.inject('/health/live')
  t.equal(live.statusCode, 200)
  t.match(live.json(), { status: 'ok', live: true, pid: process.pid })
})

test('custom and disabled probe paths', async (t) => {
  const app = await listeningApp(t, { healthPath: '/ready', livenessPath: false })
  t.equal((await app.inject('/ready')).statusCode, 200)
  t.equal((await app.inject('/health')).statusCode, 404)
  t.equal((await app.inject('/health/live')).statusCode, 404)
})

test('a probe path the app already has a route on: a clear error naming the option, and the other path works', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.get('/health', async () => 'the app\'s own')
  app.register(hotReload, { gracefulShutdown: false })
  await t.rejects(app.ready(), { code: 'HOT_RELOAD_INVALID_OPTION', message: /option "healthPath": the app has a route GET \/health too/ })
  // The same when the app's route comes later, from a plugin registered after this one.
  const later = Fastify()
  t.teardown(() => later.close())
  later.register(hotReload, { gracefulShutdown: false })
  later.register(async (api) => { api.get('/health/live', async () => 'the app\'s own') })
  await t.rejects(later.ready(), { code: 'HOT_RELOAD_INVALID_OPTION', message: /option "livenessPath": the app has a route GET \/health\/live too/ })
  const other = Fastify()
  t.teardown(() => other.close())
  other.get('/health', async () => 'the app\'s own')
  other.register(hotReload, { gracefulShutdown: false, healthPath: '/ready' })
  await other.ready()
  t.equal((await other.inject('/health')).body, 'the app\'s own')
  t.type(JSON.parse((await other.inject('/ready')).body).ready, 'boolean', 'the probe answers on its own path')
})

test('under pressure: readiness 503 with the reason, liveness still 200', async (t) => {
  const app = await listeningApp(t, { underPressure: { healthCheck: async () => false, healthCheckInterval: 20 } })
  await new Promise((resolve) => setTimeout(resolve, 100))
  const health = await app.inject('/health')
  t.equal(health.statusCode, 503)
  t.match(health.json(), { ready: false, reason: 'under-pressure' })
  t.equal((await app.inject('/health/live')).statusCode, 200)
  t.equal((await app.inject('/')).statusCode, 503, 'under-pressure guards the app routes')
})

test('without underPressure options, @fastify/under-pressure is not registered (it could never report pressure) and /health is 200', async (t) => {
  const app = await listeningApp(t)
  t.notOk(app.hasDecorator('isUnderPressure'), 'not registered: no event-loop sampling every 10 ms')
  t.equal((await app.inject('/health')).statusCode, 200)
})

test('underPressure: {} registers it, without thresholds', async (t) => {
  const app = await listeningApp(t, { underPressure: {} })
  t.ok(app.hasDecorator('isUnderPressure'), 'an options object, even empty, registers it')
  t.equal((await app.inject('/health')).statusCode, 200)
})

test('an app that registers @fastify/under-pressure itself: /health reports its verdict; underPressure given too is a clear error, not dropped', async (t) => {
  const underPressure = require('@fastify/under-pressure')
  const app = Fastify()
  await app.register(underPressure, { healthCheck: async () => false, healthCheckInterval: 20 })
  app.register(hotReload, { gracefulShutdown: false })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.match((await app.inject('/health')).json(), { ready: false, reason: 'under-pressure' }, 'the app\'s own verdict')

  const both = Fastify()
  t.teardown(() => both.close())
  await both.register(underPressure, { maxEventLoopDelay: 1000 })
  both.register(hotReload, { gracefulShutdown: false, underPressure: { maxHeapUsedBytes: 1 } })
  await t.rejects(both.ready(), { code: 'HOT_RELOAD_INVALID_OPTION', message: /option "underPressure": the app registers @fastify\/under-pressure itself/ })
})

test('the plugin takes only the signals it was asked to handle, and gives them back', async (t) => {
  const before = Object.fromEntries(['SIGUSR2', 'SIGHUP', 'SIGTERM', 'SIGINT', 'SIGUSR1', 'uncaughtException', 'unhandledRejection', 'beforeExit']
    .map((name) => [name, process.listenerCount(name)]))
  const app = Fastify()
  app.register(hotReload, { reloadSignals: ['SIGHUP'] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const during = (name) => process.listenerCount(name) - before[name]
  // A reload signal is ours alone while we serve: what listened before is set aside (and given back).
  t.equal(process.listenerCount('SIGHUP'), 1, 'SIGHUP reloads, as configured, and only that')
  t.equal(during('SIGUSR2'), 0, 'SIGUSR2 is not taken when not configured')
  // Two each: close-with-grace's, and one that keeps the signal handled while close-with-grace
  // swaps its own at the first signal (lib/signals.ts).
  t.equal(during('SIGTERM'), 2, 'SIGTERM shuts down gracefully')
  t.equal(during('SIGINT'), 2, 'SIGINT shuts down gracefully')
  for (const name of ['SIGUSR1', 'uncaughtException', 'unhandledRejection', 'beforeExit']) t.equal(during(name), 0, `${name} is left alone`)
  await app.close()
  for (const name of Object.keys(before)) t.equal(process.listenerCount(name), before[name], `${name} listeners restored`)
})

test('a reload while one is running joins it', async (t) => {
  const execPath = vanishingExecutable(t)
  const app = await listeningApp(t, { successor: { execPath } })
  fs.rmSync(execPath)
  const [a, b] = [app.hotReload.reload(), app.hotReload.reload()]
  t.equal(a, b, 'the same promise')
  await a
})

test('several Fastify instances in one process share one generation; registering twice on one instance is refused', async (t) => {
  const first = await listeningApp(t)
  const second = await listeningApp(t)
  t.equal(second.hotReload.state, 'serving')
  t.equal(second.hotReload.generation, first.hotReload.generation)
  t.equal(second.hotReload.pid, first.hotReload.pid)
  const twice = Fastify()
  twice.register(hotReload, { gracefulShutdown: false })
  twice.register(hotReload, { gracefulShutdown: false })
  const error = await twice.ready().then(() => undefined, (err) => err)
  t.equal(error?.code, 'HOT_RELOAD_ALREADY_REGISTERED')
  t.match(error?.message, /already registered on this Fastify instance/)
  await twice.close().catch(() => {})
  await first.close()
  t.equal(second.hotReload.state, 'serving', 'the other instance serves on once one closed')
  t.equal((await second.inject('/health')).statusCode, 200)
  await second.close()
  t.equal(second.hotReload.state, 'closed', 'the last instance closes the generation')
  const third = await listeningApp(t)
  t.equal(third.hotReload.state, 'serving', 'after every instance closed, a new one starts a new generation')
})

'use strict'
// lib/generation.ts and lib/handover.ts in-process: a real Fastify app on loopback, its parent played
// by a fake process port. Fast, direct checks of the state machine's paths (the real-process suite
// proves the same paths under load).
const { EventEmitter } = require('node:events')
const { test } = require('tap')
const Fastify = require('fastify')
const { Generation } = require('../../dist/lib/generation')
const { ParentLink } = require('../../dist/lib/parent-link')
const { chooseMode } = require('../../dist/lib/mode')
const { resolveOptions } = require('../../dist/lib/options')
const { HotReloadFacade } = require('../../dist/lib/facade')
const { FakePort } = require('../helpers/fake-port')

const LAUNCH = { execPath: '/nonexistent/node', execArgv: [], args: ['app.js'], cwd: process.cwd() }

/** A generation wired as the plugin wires it, but to a fake port (and a fake parent, when given). */
function generation (t, { supervised = false, parentPort, port: standalonePort, generation = parentPort ? 2 : 1, options = {}, expectedInstances = 1 } = {}) {
  const port = parentPort ?? standalonePort ?? new FakePort({ connected: false })
  const handoff = parentPort ? { supervised, parentPid: 1, generation, sockets: [], instances: expectedInstances } : null
  const mode = chooseMode(handoff)
  const parent = parentPort ? mode.connectParent(port) : undefined
  const resolved = resolveOptions({ gracefulShutdown: false, underPressure: false, drainTimeout: 2000, idleGrace: 50, ...options })
  const gen = new Generation({
    options: resolved,
    log: Fastify().log,
    generation,
    inherited: [],
    expectedInstances,
    parent,
    launch: LAUNCH,
    mode,
    port,
    env: {}
  })
  const { app, facade, states } = instance(t, gen, resolved)
  return { app, gen, facade, port, states, parent }
}

/** One more Fastify instance attached to a generation, as the plugin attaches it. */
function instance (t, gen, options) {
  const app = Fastify()
  const facade = new HotReloadFacade(() => gen)
  const attached = gen.attach(app, options, facade)
  app.get('/health', async (request, reply) => {
    const reason = gen.notReadyReason(attached)
    reply.code(reason === null ? 200 : 503)
    return { reason }
  })
  app.addHook('onListen', async () => { await gen.onListen(attached) })
  app.addHook('onClose', async () => { gen.onClose(attached) })
  const states = []
  facade.on('state', (next, previous) => states.push(`${previous}->${next}`))
  t.teardown(() => app.close())
  return { app, facade, states }
}

const tick = (ms = 20) => new Promise((resolve) => setTimeout(resolve, ms))

/** A supervised worker (its supervisor a fake port) that listens and was committed. */
async function committedWorker (t) {
  const parts = generation(t, { parentPort: new FakePort(), supervised: true })
  await parts.app.listen({ port: 0, host: '127.0.0.1' })
  await tick()
  parts.port.deliver({ type: 'commit', keepChannel: true })
  await tick()
  return parts
}

test('a first generation serves; a reload whose successor cannot start keeps it serving', async (t) => {
  const { app, facade, states } = generation(t)
  const events = []
  for (const name of ['serving', 'reloading', 'reloadFailed', 'reloaded']) facade.on(name, () => events.push(name))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal(facade.state, 'serving')
  const result = await facade.reload()
  t.equal(result.ok, false)
  t.equal(result.error.code, 'HOT_RELOAD_SPAWN_FAILED')
  t.equal(facade.state, 'serving')
  t.same(events, ['serving', 'reloading', 'reloadFailed'])
  t.same(states, ['starting->serving', 'serving->reloading', 'reloading->serving'])
  t.same(Object.getOwnPropertyNames(Object.getPrototypeOf(facade)).sort(), ['constructor', 'generation', 'pid', 'reload', 'state'],
    'the facade has exactly the documented members (and EventEmitter\'s)')
  t.same(Object.keys(facade).filter((key) => !key.startsWith('_')), [], 'and no own data a caller could reach')
  for (const member of ['onListen', 'onClose', 'shutdown', 'notReadyReason']) t.equal(facade[member], undefined, `no ${member}`)
})

test('a successor: checks its readiness, reports ready, and serves once committed', async (t) => {
  const parentPort = new FakePort()
  const { app, facade, states } = generation(t, { parentPort })
  let serving
  facade.on('serving', (info) => { serving = info })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await tick()
  const [ready] = parentPort.sentOfType('ready')
  t.match(ready, { pid: parentPort.pid, generation: 2 })
  t.equal(serving, undefined, 'not the serving generation before the verdict')
  const refused = await facade.reload()
  t.match(refused.error.message, /not yet confirmed/)
  parentPort.deliver({ type: 'commit', keepChannel: true })
  await tick()
  t.same(serving, { generation: 2, pid: parentPort.pid })
  t.same(states, ['starting->serving'])
})

test('a successor aborted by its parent drains and exits 1', async (t) => {
  const parentPort = new FakePort()
  const { app, facade } = generation(t, { parentPort })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await tick()
  const drained = new Promise((resolve) => facade.once('drained', resolve))
  parentPort.deliver({ type: 'abort' })
  const result = await drained
  t.equal(result.reason, 'shutdown')
  t.equal(facade.state, 'closed')
  await tick()
  t.same(parentPort.exits, [1])
})

test('supervised: reloads are the supervisor\'s; a drain order with probation, then resume, serves again', async (t) => {
  const parentPort = new FakePort()
  const { app, facade, states } = generation(t, { parentPort, supervised: true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await tick()
  const [listener] = parentPort.sentOfType('listener')
  t.match(listener, { address: `127.0.0.1:${app.server.address().port}` }, 'the supervisor gets the socket we bound')
  parentPort.deliver({ type: 'commit', keepChannel: true })
  await tick()
  const asked = facade.reload()
  const [request] = parentPort.sentOfType('reload-request')
  parentPort.deliver({ type: 'reload-result', id: request.id, result: { ok: true, generation: 3, pid: 77, durationMs: 5, successorPid: 77 } })
  t.match(await asked, { ok: true, generation: 3 })
  const resumed = new Promise((resolve) => facade.once('resumed', resolve))
  parentPort.deliver({ type: 'drain', probation: true })
  await tick()
  t.equal(facade.state, 'draining')
  parentPort.deliver({ type: 'resume', successorPid: 77, reason: 'generation 3 died' })
  t.match(await resumed, { generation: 2, successorPid: 77, reason: 'generation 3 died' })
  t.equal(facade.state, 'serving')
  t.same(parentPort.exits, [], 'it did not exit')
  t.same(states, ['starting->serving', 'serving->draining', 'draining->serving'])
})

test('supervised: a resume after a successor that was never spawned names none (an older supervisor says 0)', async (t) => {
  for (const said of [undefined, 0]) {
    const { port: parentPort, facade } = await committedWorker(t)
    const resumed = new Promise((resolve) => facade.once('resumed', resolve))
    parentPort.deliver({ type: 'drain', probation: true })
    await tick()
    parentPort.deliver({ type: 'resume', ...(said !== undefined && { successorPid: said }), reason: 'generation 3 could not start' })
    const info = await resumed
    t.match(info, { generation: 2, reason: 'generation 3 could not start' }, `resume with successorPid ${said}`)
    t.notOk('successorPid' in info, `no successorPid in the event (the supervisor said ${said})`)
    t.equal(facade.state, 'serving')
  }
})

test('supervised: the supervisor gone means drain and exit 0', async (t) => {
  const { port: parentPort, facade } = await committedWorker(t)
  const drained = new Promise((resolve) => facade.once('drained', resolve))
  parentPort.disconnect()
  t.equal((await drained).reason, 'shutdown')
  await tick()
  t.same(parentPort.exits, [0])
})

test('shutdown drains in-flight requests before it closes', async (t) => {
  const { app, gen, facade } = generation(t)
  let release
  app.get('/slow', () => new Promise((resolve) => { release = resolve }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const answer = fetch(`http://127.0.0.1:${app.server.address().port}/slow`).then((res) => res.text())
  await tick(50)
  const stopping = gen.shutdown()
  await tick()
  t.equal(facade.state, 'draining')
  release('done')
  t.equal(await answer, 'done', 'the request in flight got its answer')
  const result = await stopping
  t.equal(result.cutConnections, 0)
  t.equal(facade.state, 'closed')
  t.ok(new EventEmitter())
})

test('a listener already on a reload signal (fastify-cli\'s close-with-grace) is set aside while serving, and given back at close', async (t) => {
  const port = new FakePort({ connected: false })
  let shutDownBySomeoneElse = 0
  const other = () => { shutDownBySomeoneElse++ }
  port.on('SIGUSR2', other)
  const { app, facade } = generation(t, { port })
  const reloads = []
  facade.on('reloading', () => reloads.push('reloading'))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.same(port.listeners('SIGUSR2').includes(other), false, 'set aside')
  port.emit('SIGUSR2')
  await tick(50)
  t.equal(shutDownBySomeoneElse, 0, 'the reload signal did not reach the other listener')
  t.same(reloads, ['reloading'], 'it reloaded')
  await app.close()
  t.ok(port.listeners('SIGUSR2').includes(other), 'given back once the app closed')
  t.equal(port.listeners('SIGUSR2').length, 1, 'and ours is gone')
})

test('two instances, one generation: events reach both facades, one reload for both, a closed instance leaves the other serving', async (t) => {
  const { app, gen, facade } = generation(t)
  const seen = { app: [], admin: [] }
  for (const name of ['serving', 'reloading', 'reloadFailed']) facade.on(name, () => seen.app.push(name))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal(facade.state, 'serving')
  // The second instance is created once the first serves (as an app that awaits listen() does).
  const admin = instance(t, gen, resolveOptions({ gracefulShutdown: false, underPressure: false }))
  for (const name of ['serving', 'reloading', 'reloadFailed']) admin.facade.on(name, () => seen.admin.push(name))
  t.equal(admin.facade.state, 'serving', 'its facade speaks for the process\'s generation')
  await admin.app.listen({ port: 0, host: '127.0.0.1' })
  t.same(seen.admin, ['serving'], 'an instance that listens later is told it serves')
  const [a, b] = [facade.reload(), admin.facade.reload()]
  t.equal(a, b, 'a reload asked on either instance is the same one reload')
  t.equal((await a).error.code, 'HOT_RELOAD_SPAWN_FAILED')
  t.same(seen.app, ['serving', 'reloading', 'reloadFailed'])
  t.same(seen.admin, ['serving', 'reloading', 'reloadFailed'])
  await admin.app.close()
  t.equal(facade.state, 'serving', 'the other instance serves on')
  t.equal(gen.open, true)
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
  await app.close()
  t.equal(gen.open, false)
  t.equal(facade.state, 'closed', 'the last instance closes the generation')
})

test('a reload signal before the generation serves is deferred: one reload once it serves, however many came', async (t) => {
  const port = new FakePort({ connected: false })
  const { app, facade } = generation(t, { port })
  t.equal(port.listeners('SIGUSR2').length, 1, 'the signal is taken at registration, before listen()')
  const events = []
  for (const name of ['serving', 'reloading', 'reloadFailed']) facade.on(name, () => events.push(name))
  port.emit('SIGUSR2')
  port.emit('SIGUSR2')
  port.emit('SIGUSR2')
  await tick()
  t.same(events, [], 'nothing runs before it serves')
  const early = await facade.reload()
  t.match(early, { ok: false, generation: 1 }, 'reload() before serving answers at once: not now')
  t.match(early.error.message, /starting/)
  await app.listen({ port: 0, host: '127.0.0.1' })
  await tick(50)
  // The successor cannot be spawned (LAUNCH names no binary): the reload runs, and fails, once.
  t.same(events, ['serving', 'reloading', 'reloadFailed'], 'one deferred reload, after serving')
  t.equal(facade.state, 'serving')
})

test('a successor: a reload signal before its commit waits for it; standalone it reloads itself, supervised it asks the supervisor', async (t) => {
  for (const supervised of [false, true]) {
    const parentPort = new FakePort()
    const { app, facade } = generation(t, { parentPort, supervised })
    const events = []
    for (const name of ['serving', 'reloading', 'reloadFailed']) facade.on(name, () => events.push(name))
    parentPort.emit('SIGUSR2')
    await app.listen({ port: 0, host: '127.0.0.1' })
    await tick()
    parentPort.emit('SIGUSR2')
    await tick()
    t.same(events, [], `${supervised ? 'supervised' : 'standalone'}: nothing before the commit`)
    t.same(parentPort.sentOfType('reload-request'), [], 'no reload asked of anyone')
    parentPort.deliver({ type: 'commit', keepChannel: true })
    await tick(50)
    if (supervised) {
      t.same(events, ['serving'])
      t.equal(parentPort.sentOfType('reload-request').length, 1, 'supervised: one reload asked of the supervisor once it serves')
    } else {
      t.same(events, ['serving', 'reloading', 'reloadFailed'], 'standalone: one reload of its own once it serves')
    }
    await app.close()
  }
})

test('a deferred reload is dropped when the app closes before serving; the signal is given back', async (t) => {
  const port = new FakePort({ connected: false })
  const { app, facade } = generation(t, { port })
  const events = []
  facade.on('reloading', () => events.push('reloading'))
  port.emit('SIGUSR2')
  await app.ready()
  await app.close()
  await tick(50)
  t.same(events, [], 'no reload ran')
  t.equal(port.listeners('SIGUSR2').length, 0, 'the handler is gone')
})

test('two instances take the reload signal once', async (t) => {
  const port = new FakePort({ connected: false })
  const { gen } = generation(t, { port })
  instance(t, gen, resolveOptions({ gracefulShutdown: false, underPressure: false }))
  t.equal(port.listeners('SIGUSR2').length, 1)
})

test('standalone: a successor whose drain is over asks its predecessor for no more connections, and drains one that came before the answer before it closes', async (t) => {
  const net = require('node:net')
  const parentPort = new FakePort()
  const { app, gen, facade } = generation(t, { parentPort })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const listener = `127.0.0.1:${app.server.address().port}`
  for (let i = 0; i < 100 && parentPort.sentOfType('ready').length === 0; i++) await tick()
  parentPort.deliver({ type: 'commit', keepChannel: true })
  await tick()
  const shutdown = gen.shutdown()
  for (let i = 0; i < 100 && parentPort.sentOfType('handoffs-end').length === 0; i++) await tick()
  t.equal(parentPort.sentOfType('handoffs-end').length, 1, 'its drain over, it asks for no more connections')
  await tick(100)
  t.equal(facade.state, 'draining', 'and does not close before the answer')
  // A connection the predecessor handed over before it heard: accepted elsewhere, sent as a raw handle.
  const other = net.createServer({ pauseOnConnect: true })
  await new Promise((resolve) => other.listen(0, '127.0.0.1', resolve))
  t.teardown(() => other.close())
  const accepted = new Promise((resolve) => other.once('connection', resolve))
  const client = net.connect(other.address().port, '127.0.0.1')
  client.on('error', () => {})
  t.teardown(() => client.destroy())
  const socket = await accepted
  parentPort.deliver({ type: 'connection', listener }, socket._handle)
  parentPort.deliver({ type: 'handoffs-ended' })
  let received = ''
  client.setEncoding('utf8').on('data', (chunk) => { received += chunk })
  const closed = new Promise((resolve) => client.once('close', resolve))
  client.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n')
  await closed
  t.match(received, /^HTTP\/1\.1 503[^]*"reason":"draining"/, 'the connection it got before the answer was served (by this draining generation)')
  t.match(received.toLowerCase(), /connection: close/, 'and closed the ordinary way')
  t.equal((await shutdown).reason, 'shutdown', 'then the drain ended')
})

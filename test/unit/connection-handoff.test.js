'use strict'
// The receiving side of a connection handoff, on real sockets: a connection handed to a generation
// is served by its server for that address, even while that server does not accept (a drain on
// probation that is told to serve again can be handed a connection in the same read of its
// channel, before it listens again: it was closed, and the client's request reset).
const http = require('node:http')
const { test } = require('tap')
const Fastify = require('fastify')
const { Listeners } = require('../../dist/lib/listeners')
const { InheritedPool } = require('../../dist/lib/socket-adoption')
const { ConnectionTracker } = require('../../dist/lib/connection-tracker')
const { ConnectionHandoff, MOVE_RAMP_MIN_MS, MOVE_RAMP_MAX_MS, moveRampMs, drainRampMs } = require('../../dist/lib/connection-handoff')
const { Probations } = require('../../dist/lib/supervisor/probation')
const { formatAddress, fromServerAddress } = require('../../dist/lib/listener-address')
const { detachConnection } = require('../../dist/lib/node-internals')
const { RawConnection } = require('../helpers/load')

const silent = { info () {}, warn () {}, error () {}, debug () {}, child () { return silent } }

/** A Fastify app listening on loopback with our Listeners, and a handoff receiving into it. */
async function receivingApp (t) {
  const app = Fastify()
  app.get('/', async () => ({ served: 'here' }))
  const listeners = new Listeners(app, new InheritedPool([]), () => {}, async () => true)
  await app.listen({ port: 0, host: '127.0.0.1' })
  listeners.stopIntercepting()
  t.teardown(() => app.close())
  const key = formatAddress(fromServerAddress(app.server.address()))
  const handoff = new ConnectionHandoff(new ConnectionTracker(), listeners, silent)
  return { app, listeners, key, handoff }
}

/**
 * A connection accepted by another HTTP server and detached from its parser at once (nothing
 * read): its handle, as one arrives over IPC, with the client's request waiting in the kernel. (In
 * one process the handle is the same, not a copy: the other server's socket is left alone.)
 */
async function handleOfNewConnection (t) {
  let detached
  const other = http.createServer(() => t.fail('the other server read the request'))
  other.on('connection', (socket) => { detached = detachConnection(socket) })
  await new Promise((resolve) => other.listen(0, '127.0.0.1', resolve))
  t.teardown(() => other.close())
  const client = await RawConnection.open({ host: '127.0.0.1', port: other.address().port })
  t.teardown(() => client.close())
  while (detached === undefined) await new Promise((resolve) => setImmediate(resolve))
  t.ok(detached, 'the accepted connection was detached')
  client.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  return { client, handle: detached }
}

test('a connection handed over while the server accepts is served by it', async (t) => {
  const { key, handoff } = await receivingApp(t)
  const { client, handle } = await handleOfNewConnection(t)
  handoff.receive(key, handle)
  const response = await client.readResponse()
  t.equal(response.status, 200)
  t.match(response.body, /"served":"here"/)
})

test('a connection handed over while the server does not accept (a drain that may resume) is served, not closed', async (t) => {
  const { app, listeners, key, handoff } = await receivingApp(t)
  listeners.stopAccepting(false)
  t.equal(app.server.listening, false, 'the server no longer accepts')
  t.equal(listeners.serverFor(key), app.server, 'the closed server is still ours for its address')
  const { client, handle } = await handleOfNewConnection(t)
  handoff.receive(key, handle)
  const response = await client.readResponse()
  t.equal(response.status, 200, 'the request on the handed-over connection is answered')
  t.match(response.body, /"served":"here"/)
})

test('a connection for an address this generation never listened on is closed', async (t) => {
  const { handoff } = await receivingApp(t)
  const { client, handle } = await handleOfNewConnection(t)
  const closed = new Promise((resolve) => client.socket.once('close', resolve))
  handoff.receive('127.0.0.1:1', handle)
  await closed
  t.pass('the client saw its connection close')
})

test('a closed server is not taken for an address it never had', async (t) => {
  const { listeners } = await receivingApp(t)
  listeners.stopAccepting(false)
  t.equal(listeners.serverFor('127.0.0.1:1'), undefined)
})

test('moveRampMs: over the probation less a margin, within MOVE_RAMP_MIN_MS and MOVE_RAMP_MAX_MS, and at most half the drain deadline', async (t) => {
  const drainTimeout = 10000
  t.equal(moveRampMs(0, drainTimeout), MOVE_RAMP_MIN_MS, 'no probation: the shortest ramp')
  t.equal(moveRampMs(300, drainTimeout), MOVE_RAMP_MIN_MS, 'a short probation: the shortest ramp')
  t.equal(moveRampMs(1200, drainTimeout), 700, 'in between: the probation less 500 ms')
  t.equal(moveRampMs(2000, drainTimeout), MOVE_RAMP_MAX_MS, 'the default probation (2 s): the longest ramp, 500 ms before its end')
  t.equal(moveRampMs(60000, drainTimeout), MOVE_RAMP_MAX_MS, 'a long probation: the longest ramp')
  t.equal(moveRampMs(2000, 1000), 500, 'a drain deadline of 1 s: every move starts in its first half')
  t.equal(moveRampMs(300, 400), 200, 'even below the shortest ramp')
  t.ok(MOVE_RAMP_MIN_MS < MOVE_RAMP_MAX_MS)
})

test("drainRampMs: a ramp asked for (the supervisor's) wins over our own options, within half our drain deadline", async (t) => {
  const own = { probation: 60000, drainTimeout: 10000 }
  t.equal(drainRampMs(undefined, own), MOVE_RAMP_MAX_MS, 'nothing asked: from our own probation')
  t.equal(drainRampMs(MOVE_RAMP_MIN_MS, own), MOVE_RAMP_MIN_MS, 'asked for a shorter one than ours')
  t.equal(drainRampMs(1200, { probation: 0, drainTimeout: 10000 }), 1200, 'asked for a longer one than ours')
  t.equal(drainRampMs(1500, { probation: 2000, drainTimeout: 1000 }), 500, 'never past half our own drain deadline')
  t.equal(drainRampMs(-5, own), 0, 'nonsense from the channel: no ramp')
})

test("the supervisor's drain order carries the ramp of its own probation, whatever the worker's options say", async (t) => {
  const tracked = () => true
  t.same(new Probations(0, 10000, tracked, silent).drainOrder(false), { type: 'drain', probation: false, rampMs: MOVE_RAMP_MIN_MS }, '--probation 0')
  t.same(new Probations(1200, 10000, tracked, silent).drainOrder(true), { type: 'drain', probation: true, rampMs: 700 })
  t.same(new Probations(5000, 2000, tracked, silent).drainOrder(true), { type: 'drain', probation: true, rampMs: 1000 }, 'half its --drain-timeout')
})

test('a drain spreads its moves over its ramp: after a move the next waits its share; once the drain stops, moves go at once', async (t) => {
  const { app, handoff } = await receivingApp(t)
  const accepted = []
  app.server.on('connection', (socket) => accepted.push(socket))
  const { port } = app.server.address()
  const clients = [await RawConnection.open({ host: '127.0.0.1', port }), await RawConnection.open({ host: '127.0.0.1', port })]
  t.teardown(() => { for (const client of clients) client.close() })
  for (const client of clients) t.equal((await client.get('/')).status, 200)
  const outlet = { open: true, send: async () => {} }
  handoff.beginRamp(2, MOVE_RAMP_MIN_MS, 60000)
  const spacing = MOVE_RAMP_MIN_MS / 2
  const sentAt = performance.now()
  t.ok(handoff.hasRoom, 'the first move goes at once')
  t.ok(handoff.send(accepted[0], app.server, outlet), 'the first connection moves')
  await handoff.settled()
  // Right after a move, the next waits (checked only while the process was not stalled past the spacing).
  if (performance.now() - sentAt < spacing / 2) t.notOk(handoff.hasRoom, 'the next move waits its share of the ramp')
  await new Promise((resolve) => setTimeout(resolve, spacing + 20))
  t.ok(handoff.hasRoom, 'its turn came')
  t.ok(handoff.send(accepted[1], app.server, outlet), 'the second connection moves')
  await handoff.settled()
  handoff.endRamp()
  t.ok(handoff.hasRoom, 'with the drain stopped, moves (the balance) go at once')
})

test('a cut drain rushes its moves: with one move on its way and the ramp far from its next turn, the others go at once', async (t) => {
  const { app, handoff } = await receivingApp(t)
  const accepted = []
  app.server.on('connection', (socket) => accepted.push(socket))
  const { port } = app.server.address()
  const clients = []
  for (let i = 0; i < 4; i++) clients.push(await RawConnection.open({ host: '127.0.0.1', port }))
  t.teardown(() => { for (const client of clients) client.close() })
  for (const client of clients) t.equal((await client.get('/')).status, 200)
  // An outlet whose sends stay on their way until released: the move in flight holds the room.
  const pending = []
  const outlet = { open: true, send: () => new Promise((resolve) => pending.push(resolve)) }
  handoff.beginRamp(3, 60000, 60000)
  t.ok(handoff.send(accepted[0], app.server, outlet), 'the first connection moves')
  t.notOk(handoff.hasRoom, 'the next waits: one move on its way, and its turn 20 s away')
  handoff.rush()
  t.ok(handoff.hasRoom, 'rushed: room at once')
  t.ok(handoff.send(accepted[1], app.server, outlet), 'the second moves beside the first')
  t.ok(handoff.send(accepted[2], app.server, outlet), 'and the third')
  t.equal(pending.length, 3, 'all three are on their way together')
  for (const resolve of pending) resolve()
  await handoff.settled()
  handoff.endRamp()
  handoff.beginRamp(2, 60000, 60000)
  t.ok(handoff.send(accepted[3], app.server, outlet), 'a later drain moves its first connection')
  t.notOk(handoff.hasRoom, 'and, not rushed, its next waits its turn')
  for (const resolve of pending.splice(0)) resolve()
  await handoff.settled()
})

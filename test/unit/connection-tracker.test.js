'use strict'
// lib/connection-tracker.ts: a drain finishes in-flight requests with `Connection: close`, closes
// idle keep-alive connections only after idleGrace, and cutAll() closes whatever is left. In-process,
// with a real node:http server on 127.0.0.1.
const http = require('node:http')
const { test } = require('tap')
const { ConnectionTracker } = require('../../dist/lib/connection-tracker')
const { RawConnection } = require('../helpers/load')

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function setup (t, handler = (req, res) => res.end('ok')) {
  const server = http.createServer(handler)
  const tracker = new ConnectionTracker()
  tracker.watch(server)
  const accepted = []
  server.on('connection', (socket) => accepted.push(socket))
  await new Promise((resolve, reject) => server.once('error', reject).listen({ host: '127.0.0.1', port: 0 }, resolve))
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => {
    agent.destroy()
    tracker.cutAll()
    server.closeAllConnections()
    return new Promise((resolve) => server.close(() => resolve()))
  })
  const get = (path = '/') => new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: server.address().port, path, agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body, socket: req.socket }))
    })
    req.on('error', reject)
  })
  return { server, tracker, agent, accepted, get }
}

test('drain() with no connection resolves at once', async (t) => {
  const tracker = new ConnectionTracker()
  t.equal(tracker.size, 0)
  t.notOk(tracker.isDraining)
  let resolved = false
  const drained = tracker.drain(1000).then(() => { resolved = true })
  await Promise.resolve()
  await Promise.resolve()
  t.ok(resolved, 'resolved within the same tick, not after idleGrace')
  await drained
  t.ok(tracker.isDraining, 'draining from then on')
  t.equal(tracker.cutAll(), 0)
})

test('drain() with a watched server but no connection resolves at once', async (t) => {
  const { tracker } = await setup(t)
  const started = Date.now()
  await tracker.drain(5000)
  t.ok(Date.now() - started < 1000, 'did not wait for idleGrace')
})

test('an idle keep-alive connection is closed by drain() once idle for idleGrace', async (t) => {
  const { tracker, accepted, get } = await setup(t)
  const response = await get()
  const idleAt = Date.now()
  t.equal(response.status, 200)
  t.equal(response.headers.connection, 'keep-alive', 'keep-alive before the drain')
  t.equal(tracker.size, 1, 'one tracked connection')
  t.equal(accepted.length, 1)

  const serverSide = accepted[0]
  const clientSide = response.socket
  const serverClosed = new Promise((resolve) => serverSide.once('close', () => resolve(Date.now())))
  const clientClosed = new Promise((resolve) => clientSide.once('close', () => resolve(Date.now())))

  let drainedAt
  const drained = tracker.drain(200).then(() => { drainedAt = Date.now() })
  await delay(50)
  t.notOk(serverSide.destroyed, 'not closed right away: it may be about to carry a request')
  t.equal(drainedAt, undefined, 'drain pending while the connection is open')

  const closedAt = await serverClosed
  await drained
  await clientClosed
  t.ok(closedAt - idleAt >= 150, `closed ${closedAt - idleAt} ms after it went idle (idleGrace 200)`)
  t.ok(drainedAt >= closedAt, 'drain resolves once it is closed')
  t.equal(tracker.size, 0)
  t.ok(clientSide.destroyed, 'the client saw it close')
})

test('a request that waits unread while the process is stalled is served, not reset, though its connection looked idle for idleGrace', async (t) => {
  const { server, tracker } = await setup(t)
  const connection = await RawConnection.open({ host: '127.0.0.1', port: server.address().port })
  t.teardown(() => connection.close())
  const first = await connection.get('/')
  t.equal(first.headers.connection, 'keep-alive', 'keep-alive before the drain')
  const drained = tracker.drain(50)
  // The next request reaches the kernel at once; then this process is busy (a loaded machine, GC, a
  // long synchronous task) for longer than idleGrace before it reads it. When it wakes, timers run
  // before I/O is read: a sweep that closed the connection then would reset a request already sent.
  connection.write('GET /next HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  const stalledUntil = Date.now() + 200
  while (Date.now() < stalledUntil) { /* the stall */ }
  const next = await connection.readResponse().catch((error) => ({ error: error.code }))
  t.same({ status: next.status, connection: next.headers?.connection, error: next.error }, { status: 200, connection: 'close', error: undefined },
    'answered, with connection: close (not closed under the request)')
  await drained
  t.equal(tracker.size, 0, 'then the connection closed and the drain ended')
})

test('a request in flight when the drain starts completes, with connection: close', async (t) => {
  let arrived
  const inFlight = new Promise((resolve) => { arrived = resolve })
  const { tracker, accepted, get } = await setup(t, (req, res) => {
    arrived()
    setTimeout(() => res.end('late'), 300)
  })
  const pending = get('/slow')
  await inFlight
  t.equal(tracker.size, 1)
  let drained = false
  const drain = tracker.drain(5000).then(() => { drained = true })
  const serverClosed = new Promise((resolve) => accepted[0].once('close', resolve))

  const response = await pending
  t.equal(response.status, 200, 'answered')
  t.equal(response.body, 'late', 'the whole body')
  t.equal(response.headers.connection, 'close', 'connection: close')
  await serverClosed
  await drain
  t.ok(drained, 'drain resolves once the connection closes after its response')
  t.equal(tracker.size, 0)
})

test('a request that arrives on a keep-alive connection during the drain gets connection: close', async (t) => {
  const { tracker, get } = await setup(t)
  const first = await get()
  t.equal(first.headers.connection, 'keep-alive')
  const drain = tracker.drain(5000)
  const second = await get()
  t.equal(second.status, 200)
  t.equal(second.headers.connection, 'close')
  t.equal(second.socket, first.socket, 'on the same connection')
  await drain
  t.equal(tracker.size, 0)
})

test('cutAll() closes every connection and says how many there were', async (t) => {
  const { server, tracker, accepted, get } = await setup(t)
  const agent2 = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent2.destroy())
  await get()
  await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.address().port, agent: agent2 }, (res) => { res.resume(); res.on('end', resolve) }).on('error', reject)
  })
  t.equal(tracker.size, 2, 'two keep-alive connections')
  t.equal(accepted.length, 2)
  const closed = Promise.all(accepted.map((socket) => new Promise((resolve) => socket.once('close', resolve))))
  t.equal(tracker.cutAll(), 2)
  t.ok(accepted.every((socket) => socket.destroyed), 'destroyed at once')
  await closed
  t.equal(tracker.size, 0, 'no longer tracked')
  t.equal(tracker.cutAll(), 0, 'nothing left')
})

test('cutAll() ends a drain that waits for a busy connection', async (t) => {
  let arrived
  const inFlight = new Promise((resolve) => { arrived = resolve })
  const { tracker, get } = await setup(t, () => arrived()) // never answers
  const pending = get().then(() => 'answered', () => 'cut')
  await inFlight
  let drained = false
  const drain = tracker.drain(50).then(() => { drained = true })
  await delay(150)
  t.notOk(drained, 'a busy connection is never idle')
  t.equal(tracker.cutAll(), 1)
  await drain
  t.ok(drained)
  t.equal(await pending, 'cut', 'the client saw the connection cut')
})

test('resume() ends a drain without closing anything: the drain resolves, the connection keeps serving as usual', async (t) => {
  const { tracker, accepted, get } = await setup(t)
  const first = await get()
  t.equal(first.status, 200)
  const drained = tracker.drain(60000)
  let resolved = false
  drained.then(() => { resolved = true })
  await delay(50)
  t.notOk(resolved, 'the drain waits for the idle connection')
  tracker.resume()
  await drained
  t.notOk(tracker.isDraining, 'not draining any more')
  t.equal(tracker.size, 1, 'the connection is still tracked')
  const second = await get()
  t.equal(second.status, 200)
  t.not(second.headers.connection, 'close', 'answered as usual, no Connection: close')
  t.equal(second.socket, first.socket, 'on the same connection')
  t.equal(accepted.length, 1)
  tracker.resume()
  t.pass('a second resume() is harmless')
})

'use strict'
// lib/connection-tracker.ts: a drain finishes in-flight requests with `Connection: close`, closes
// idle keep-alive connections only after idleGrace, and cutAll() closes whatever is left. In-process,
// with a real node:http server on 127.0.0.1.
const fs = require('node:fs')
const http = require('node:http')
const { test } = require('tap')
const { ConnectionTracker } = require('../../dist/lib/connection-tracker')
const { idleForMs } = require('../../dist/lib/node-internals')
const { RawConnection } = require('../helpers/load')
const { waitFor } = require('../helpers/processes')

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
// Two setImmediate hops and one more: past the point where a close the drain decided when it began
// is carried out (lib/drain-sweep.ts closes only after a poll for I/O), whatever the time it takes.
const pastDrainStart = () => new Promise((resolve) => setImmediate(() => setImmediate(() => setImmediate(resolve))))
// When a connection went idle, as the drain reads it (Node's keep-alive timer, lib/node-internals.ts)
// and in Date.now() terms; taken just before drain(), so never later than what the drain takes. The
// client's clock after its response is no reference: on a loaded machine the response may sit unread
// for a long while after the server finished it.
const idleSinceForDrain = (socket) => Date.now() - idleForMs(socket)
// Date.now() and the timers' clock tick apart: two readings a moment apart may round 1 ms differently.
const ROUNDING = 1

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
  let resolved = false
  const drained = tracker.drain(5000).then(() => { resolved = true })
  // Before any timer or I/O could run: a drain that waited for anything would still be pending.
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(resolved, 'did not wait for idleGrace')
  await drained
})

test('an idle keep-alive connection is closed by drain() once idle for idleGrace', async (t) => {
  const { tracker, accepted, get } = await setup(t)
  const idleGrace = 1000
  const response = await get()
  t.equal(response.status, 200)
  t.equal(response.headers.connection, 'keep-alive', 'keep-alive before the drain')
  t.equal(tracker.size, 1, 'one tracked connection')
  t.equal(accepted.length, 1)

  const serverSide = accepted[0]
  const clientSide = response.socket
  const serverClosed = new Promise((resolve) => serverSide.once('close', () => resolve(Date.now())))
  const clientClosed = new Promise((resolve) => clientSide.once('close', () => resolve(Date.now())))

  let drainedAt
  const idleAt = idleSinceForDrain(serverSide)
  const drained = tracker.drain(idleGrace).then(() => { drainedAt = Date.now() })
  await pastDrainStart()
  t.notOk(serverSide.destroyed && Date.now() - idleAt < idleGrace - ROUNDING, 'not closed right away: it may be about to carry a request')
  t.ok(drainedAt === undefined || serverSide.destroyed, 'drain pending while the connection is open')

  const closedAt = await serverClosed
  await drained
  await clientClosed
  t.ok(closedAt - idleAt >= idleGrace - ROUNDING, `closed ${closedAt - idleAt} ms after it went idle (idleGrace ${idleGrace})`)
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

test('a connection the drain finds idle past idleGrace from an I/O callback: a request that reaches the kernel before the close is served, not reset', async (t) => {
  const { server, tracker, accepted } = await setup(t)
  const connection = await RawConnection.open({ host: '127.0.0.1', port: server.address().port })
  t.teardown(() => connection.close())
  await connection.get('/')
  await delay(120)
  // From an I/O callback, as a drain started by the successor's IPC message is: this iteration's
  // check phase comes before the next poll for I/O. (fs callbacks are delivered in the poll phase.)
  await new Promise((resolve) => fs.stat(__filename, resolve))
  t.ok(idleForMs(accepted[0]) >= 50, 'the drain will find the connection idle for longer than idleGrace')
  const drained = tracker.drain(50)
  // Sent after the drain decided to close the connection, before the close is carried out: in the
  // kernel, unread. Nothing here depends on how long anything takes.
  connection.write('GET /next HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  const next = await connection.readResponse().catch((error) => ({ error: error.code }))
  t.same({ status: next.status, connection: next.headers?.connection, error: next.error }, { status: 200, connection: 'close', error: undefined },
    'answered, with connection: close (the close waited until the I/O was read)')
  await drained
  t.equal(tracker.size, 0, 'then the connection closed and the drain ended')
})

test('during a drain the responses it follows get no property of its own (V8 keeps its optimized code for the request path)', async (t) => {
  const keys = []
  const { tracker, get } = await setup(t, (req, res) => {
    keys.push(Reflect.ownKeys(res).map(String))
    res.end('ok')
  })
  await get()
  const drain = tracker.drain(5000)
  const during = await get()
  t.equal(during.headers.connection, 'close', 'a response the drain followed')
  t.equal(keys.length, 2)
  t.same(keys[1], keys[0], 'the same own properties as a response before the drain')
  await drain
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

// ---- no work per request outside a drain; what a drain learns from Node when it starts ---------

test('outside a drain a request costs the tracker nothing: no request listener, nothing on the response', async (t) => {
  const seen = []
  const { server, tracker, get } = await setup(t, (req, res) => {
    seen.push({ requestListeners: server.listenerCount('request'), closeListeners: res.listenerCount('close'), symbols: Object.getOwnPropertySymbols(res).map(String).filter((s) => /hot-reload/.test(s)) })
    res.end('ok')
  })
  const bare = http.createServer((req, res) => {
    seen.push({ bareCloseListeners: res.listenerCount('close') })
    res.end('ok')
  })
  await new Promise((resolve) => bare.listen({ host: '127.0.0.1', port: 0 }, resolve))
  t.teardown(() => new Promise((resolve) => { bare.closeAllConnections(); bare.close(resolve) }))
  await get()
  await get()
  await new Promise((resolve, reject) => http.get({ host: '127.0.0.1', port: bare.address().port, agent: false }, (res) => { res.resume(); res.on('end', resolve) }).on('error', reject))
  t.same(seen.slice(0, 2), [
    { requestListeners: 1, closeListeners: seen[2].bareCloseListeners, symbols: [] },
    { requestListeners: 1, closeListeners: seen[2].bareCloseListeners, symbols: [] }
  ], 'only the app\'s request listener; as many close listeners as on a server without the tracker')
  t.equal(tracker.size, 1, 'the connection is known')

  const drain = tracker.drain(5000)
  t.equal(server.listenerCount('request'), 2, 'during a drain the tracker follows requests')
  tracker.resume()
  await drain
  t.equal(server.listenerCount('request'), 1, 'and stops again when the drain is given up')
})

test('a connection idle since long before the drain is closed at once (once the I/O waiting then is read); one that just went idle waits for idleGrace', async (t) => {
  const idleGrace = 1000
  const { server, tracker, accepted, get } = await setup(t)
  await get() // connection A, idle from now on (from before this line: the server finished first)
  await delay(idleGrace + 100)
  const agent2 = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent2.destroy())
  await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.address().port, agent: agent2 }, (res) => { res.resume(); res.on('end', resolve) }).on('error', reject)
  })
  t.equal(accepted.length, 2)
  const [longIdle, justIdle] = accepted
  const justIdleSince = idleSinceForDrain(justIdle)
  const closedAt = accepted.map((socket) => new Promise((resolve) => socket.once('close', () => resolve(Date.now() - justIdleSince))))
  const drained = tracker.drain(idleGrace)
  t.notOk(longIdle.destroyed, 'not in the middle of the turn: a request may wait unread in the kernel')
  await closedAt[0]
  t.ok(longIdle.destroyed, `idle for over ${idleGrace + 100} ms (> idleGrace ${idleGrace}) when the drain started: closed once the I/O waiting then was read`)
  t.notOk(justIdle.destroyed && Date.now() - justIdleSince < idleGrace - ROUNDING, 'before the one idle for a moment only: it may be about to carry a request')
  const later = await closedAt[1]
  t.ok(later >= idleGrace - ROUNDING, `the other one closed ${later} ms after it went idle`)
  await drained
  t.equal(tracker.size, 0)
})

test('a response in flight when the drain starts that will be handed over gets no connection: close, and the connection moves once it is answered', async (t) => {
  let arrived
  const inFlight = new Promise((resolve) => { arrived = resolve })
  const { tracker, accepted, get } = await setup(t, (req, res) => {
    if (req.url === '/slow') { arrived(); setTimeout(() => res.end('late'), 200) } else res.end('ok')
  })
  const pending = get('/slow')
  await inFlight
  const moved = []
  const drain = tracker.drain(5000, (socket) => { moved.push(socket); setImmediate(() => socket.destroy()); return true })
  t.same(moved, [], 'busy: not moved')
  const response = await pending
  t.equal(response.body, 'late')
  t.not(response.headers.connection, 'close', 'it moves: the client may keep the connection')
  await drain
  t.same(moved, [accepted[0]], 'moved once its response was done')
  t.equal(tracker.movedConnections, 1)
  t.equal(tracker.size, 0)
})

test('a connection the handoff refuses drains here: closed once idle for idleGrace, its later responses with connection: close', async (t) => {
  let arrived
  const inFlight = new Promise((resolve) => { arrived = resolve })
  let answer
  let finishedAt
  const { tracker, accepted, get } = await setup(t, (req, res) => {
    // The server's end of the response: the tracker counts the connection idle no earlier than this.
    res.once('finish', () => { finishedAt = Date.now() })
    arrived()
    answer = () => res.end('late')
  })
  const pending = get('/slow')
  await inFlight
  let asked = 0
  // readyToMove says yes; the handoff says no: from then on the connection drains here.
  const drain = tracker.drain(200, () => { asked++; return false }, () => true)
  t.equal(asked, 0, 'busy: not asked yet')
  const closed = new Promise((resolve) => accepted[0].once('close', () => resolve(Date.now())))
  answer()
  const response = await pending
  t.equal(response.body, 'late')
  t.equal(asked, 1, 'asked once its response was done')
  t.equal(response.headers.connection, 'keep-alive', 'it was meant to move: no connection: close')
  const closedAfter = await closed - finishedAt
  t.ok(closedAfter >= 200, `closed after idleGrace, not at once (${closedAfter} ms after its response finished, idleGrace 200)`)
  await drain
  t.equal(asked, 1, 'never asked again')
  t.equal(tracker.size, 0)
})

test('pipelined requests sent before the drain: the queued one is followed too, and gets connection: close if its answer comes later', async (t) => {
  const net = require('node:net')
  const answers = []
  const { server, tracker } = await setup(t, (req, res) => {
    // The first one has sent its head (keep-alive) before the drain begins: too late to change.
    if (req.url === '/first') res.write('1')
    answers.push(() => res.end(req.url))
  })
  const client = net.connect(server.address().port, '127.0.0.1')
  t.teardown(() => client.destroy())
  let received = ''
  client.setEncoding('latin1')
  client.on('data', (chunk) => { received += chunk })
  const clientClosed = new Promise((resolve) => client.once('close', resolve))
  client.write('GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n')
  while (answers.length < 2) await delay(5)
  let drained = false
  const drain = tracker.drain(5000).then(() => { drained = true })
  answers[0]()
  await delay(100)
  t.notOk(drained, 'the queued response keeps the connection busy')
  answers[1]()
  await drain
  await clientClosed
  const heads = received.split('\r\n\r\n').filter((part) => part.startsWith('HTTP/1.1'))
  t.equal(heads.length, 2, 'both answered')
  t.match(heads[0], /connection: keep-alive/i, 'the first had sent its head before the drain')
  t.match(heads[1], /connection: close/i, 'the queued one, answered after the drain began: connection: close')
  t.match(received, /\/second$/, 'the whole of the second')
})

test('a drain after a resume finds the connections again, the busy one included', async (t) => {
  let answer
  const { tracker, accepted, get } = await setup(t, (req, res) => { if (req.url === '/slow') answer = () => res.end('late'); else res.end('ok') })
  await get()
  const first = tracker.drain(60000)
  tracker.resume()
  await first
  const pending = get('/slow')
  while (answer === undefined) await delay(5)
  let drained = false
  const second = tracker.drain(100).then(() => { drained = true })
  await delay(200)
  t.notOk(drained, 'busy: waits')
  t.notOk(accepted[0].destroyed, 'not closed while busy')
  answer()
  const response = await pending
  t.equal(response.headers.connection, 'close')
  await second
  t.equal(tracker.size, 0)
})

test('paced moves: while the handoff has no room an idle connection stays and is served here as usual; offerIdle() moves the next one', async (t) => {
  const { tracker, server } = await setup(t)
  const { port } = server.address()
  const connections = await Promise.all([1, 2, 3].map(() => RawConnection.open({ host: '127.0.0.1', port })))
  t.teardown(() => { for (const c of connections) c.close() })
  for (const c of connections) t.equal((await c.get('/')).status, 200)
  let inFlight = 0
  const moved = []
  // One move at a time, as ConnectionHandoff does: the next only once the previous has settled.
  const drain = tracker.drain(60000, (socket) => { moved.push(socket); inFlight++; return true }, () => inFlight === 0)
  t.equal(moved.length, 1, 'one idle connection moved at the drain\'s start, the others wait')
  const waiting = connections.filter((c) => !moved.some((socket) => socket.remotePort === c.socket.localPort))
  t.equal(waiting.length, 2)
  const answer = await waiting[0].get('/')
  t.equal(answer.status, 200, 'a waiting connection is served here meanwhile')
  t.not(answer.headers.connection, 'close', 'and is still meant to move: no connection: close')
  inFlight = 0
  tracker.offerIdle()
  t.equal(moved.length, 2, 'room again: the next idle connection moves at once')
  inFlight = 0
  tracker.offerIdle()
  t.equal(moved.length, 3)
  await drain
  t.equal(tracker.movedConnections, 3)
  t.equal(tracker.size, 0)
})

test('closeConnectionAfter(): during a drain a connection waiting its turn to move closes after that response; outside a drain it changes nothing', async (t) => {
  let closeThis = false
  let tracker
  const { tracker: watching, server } = await setup(t, (req, res) => {
    if (closeThis) tracker.closeConnectionAfter(res)
    res.end('ok')
  })
  tracker = watching
  const { port } = server.address()
  const connections = await Promise.all([1, 2].map(() => RawConnection.open({ host: '127.0.0.1', port })))
  t.teardown(() => { for (const c of connections) c.close() })
  closeThis = true
  const before = await connections[0].get('/')
  t.not(before.headers.connection, 'close', 'no drain: keep-alive as usual')
  for (const c of connections) t.equal((await c.get('/')).status, 200)
  let inFlight = 0
  const moved = []
  const drain = tracker.drain(60000, (socket) => { moved.push(socket); inFlight++; return true }, () => inFlight === 0)
  t.equal(moved.length, 1, 'one connection moved, the other waits its turn')
  const waiting = connections.find((c) => !moved.some((socket) => socket.remotePort === c.socket.localPort))
  const answer = await waiting.get('/')
  t.equal(answer.headers.connection, 'close', 'its response says connection: close')
  await waitFor(() => waiting.closed, 5000, 'the connection to close')
  inFlight = 0
  tracker.offerIdle()
  t.equal(moved.length, 1, 'it was not offered to the handoff')
  await drain
  t.equal(tracker.movedConnections, 1)
})

'use strict'
// lib/node-internals.ts: the Node internals the handoff relies on (net.Server#_handle.fd, _pipeName).
// These tests exist to fail loudly when a Node version changes them.
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { listeningFd, listeningHandle, setPipeName } = require('../../dist/lib/node-internals')

function listen (server, ...args) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(...args, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

const close = (server) => new Promise((resolve) => server.close(() => resolve()))

test(`listeningFd of a listening TCP server (Node ${process.version})`, async (t) => {
  const server = net.createServer()
  await listen(server, { host: '127.0.0.1', port: 0 })
  t.teardown(() => close(server))
  const fd = listeningFd(server)
  t.ok(Number.isInteger(fd), `an integer (${fd})`)
  t.ok(fd >= 3, 'not stdio')
  t.ok(fs.fstatSync(fd).isSocket(), 'fstat says it is a socket')
  t.equal(listeningHandle(server).fd, fd, 'listeningHandle is the handle that holds it')
  t.equal(listeningFd(server), fd, 'stable')
})

test('listeningFd of a server that does not listen throws HOT_RELOAD_NODE_INTERNALS', async (t) => {
  const server = net.createServer()
  t.throws(() => listeningFd(server), { code: 'HOT_RELOAD_NODE_INTERNALS', message: /_handle\.fd/ }, 'never listened')
  t.throws(() => listeningHandle(server), { code: 'HOT_RELOAD_NODE_INTERNALS' })
  await listen(server, { host: '127.0.0.1', port: 0 })
  t.ok(listeningFd(server) >= 3)
  await close(server)
  t.throws(() => listeningFd(server), { code: 'HOT_RELOAD_NODE_INTERNALS' }, 'closed')
})

test('setPipeName: server.address() reports the given path', async (t) => {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-pipe-')))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const bound = path.join(dir, 'bound.sock')
  const server = net.createServer((socket) => socket.end('hi'))
  await listen(server, bound)
  t.teardown(() => close(server))
  t.equal(server.address(), bound, 'before: the path it was bound to')
  t.ok(fs.fstatSync(listeningFd(server)).isSocket(), 'a unix listening socket has an fd too')

  const named = path.join(dir, 'public.sock')
  setPipeName(server, named)
  t.equal(server.address(), named, 'after: the given path')

  // It still accepts on the socket it was bound to.
  const answer = await new Promise((resolve, reject) => {
    let data = ''
    net.connect(bound).on('data', (chunk) => { data += chunk }).on('end', () => resolve(data)).on('error', reject)
  })
  t.equal(answer, 'hi', 'still serving')
})

test(`handleOfHeldFd: a held (inherited, never listened) fd becomes a handle another process can listen on (Node ${process.version})`, async (t) => {
  const { spawn } = require('node:child_process')
  const server = net.createServer()
  await listen(server, { host: '127.0.0.1', port: 0 })
  const { port } = server.address()
  // A holder process gets the socket as fd 3, wraps it and sends the handle back over IPC.
  const holder = spawn(process.execPath, ['-e', `
    const { handleOfHeldFd } = require(${JSON.stringify(path.join(__dirname, '../../dist/lib/node-internals'))})
    process.send('handle', handleOfHeldFd(3))
    process.on('message', () => process.exit(0))
  `], { stdio: ['ignore', 'inherit', 'inherit', listeningFd(server), 'ipc'], timeout: 10000 })
  t.teardown(() => { if (holder.exitCode === null) holder.kill('SIGKILL') })
  await close(server)
  const handle = await new Promise((resolve) => holder.once('message', (_m, h) => resolve(h)))
  const receiver = net.createServer((socket) => socket.end('served'))
  await listen(receiver, handle)
  t.teardown(() => close(receiver))
  const answer = await new Promise((resolve, reject) => {
    const client = net.connect(port, '127.0.0.1')
    let data = ''
    client.on('data', (chunk) => { data += chunk })
    client.on('end', () => resolve(data))
    client.on('error', reject)
  })
  t.equal(answer, 'served', 'the receiver accepts on the same port')
  holder.send('bye')
})

test(`beforeNextRequest: called once, when the next request's headers are in and before the server's 'request'; later requests are as before (Node ${process.version})`, async (t) => {
  const http = require('node:http')
  const { beforeNextRequest } = require('../../dist/lib/node-internals')
  const seen = []
  const server = http.createServer((request, response) => {
    seen.push(`request ${request.url}`)
    response.end('ok')
  })
  server.on('connection', (socket) => {
    const wrapped = beforeNextRequest(socket, () => seen.push('before'))
    seen.push(`wrapped ${wrapped}`)
  })
  await listen(server, { host: '127.0.0.1', port: 0 })
  t.teardown(() => close(server))
  const client = net.connect(server.address().port, '127.0.0.1')
  t.teardown(() => client.destroy())
  let received = ''
  client.on('data', (chunk) => { received += chunk })
  const answers = (n) => new Promise((resolve) => { const wait = () => received.split('HTTP/1.1 200').length > n ? resolve() : setTimeout(wait, 10); wait() })
  client.write('GET /a HTTP/1.1\r\nHo')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(seen, ['wrapped true'], 'not called for half a request')
  client.write('st: a\r\n\r\n')
  await answers(1)
  client.write('GET /b HTTP/1.1\r\nHost: a\r\n\r\n')
  await answers(2)
  t.same(seen, ['wrapped true', 'before', 'request /a', 'request /b'], 'once, before the first request only')
  t.equal(beforeNextRequest(new net.Socket(), () => t.fail('not called')), false, 'a socket without an HTTP parser: false')
})

test(`parserIsIdle: false while the next pipelined request is half read, true between requests (Node ${process.version})`, async (t) => {
  const http = require('node:http')
  const { parserIsIdle } = require('../../dist/lib/node-internals')
  const seen = []
  const server = http.createServer((request, response) => {
    response.end('ok')
    response.on('finish', () => setImmediate(() => seen.push(parserIsIdle(request.socket, server))))
  })
  await listen(server, { host: '127.0.0.1', port: 0 })
  t.teardown(() => close(server))
  const client = net.connect(server.address().port, '127.0.0.1')
  t.teardown(() => client.destroy())
  client.write('GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHo')
  await new Promise((resolve) => { const wait = () => seen.length >= 1 ? resolve() : setTimeout(wait, 10); wait() })
  client.write('st: a\r\n\r\n')
  await new Promise((resolve) => { const wait = () => seen.length >= 2 ? resolve() : setTimeout(wait, 10); wait() })
  t.same(seen, [false, true], 'half a request read: not idle; after it: idle')
  t.equal(parserIsIdle(new net.Socket(), server), false, 'a socket without an HTTP parser: false (nothing moves)')
})

test(`parserIsIdle: a connection whose first request has not begun is idle, accepted or handed over; half a first request is not (Node ${process.version})`, async (t) => {
  const http = require('node:http')
  const { spawn } = require('node:child_process')
  const { parserIsIdle, socketFromHandle } = require('../../dist/lib/node-internals')
  const waitUntil = (check) => new Promise((resolve) => { const wait = () => check() ? resolve() : setTimeout(wait, 5); wait() })
  const second = http.createServer((request, response) => response.end('second'))
  // It listens: Node keeps a server's list of connections from its first listen on.
  await listen(second, { host: '127.0.0.1', port: 0 })
  t.teardown(() => { second.closeAllConnections(); return close(second) })

  // Another process accepts the connection, answers one request on it and hands it over to us, as a
  // generation does to its successor (a handle crosses a process boundary: a new handle here).
  const internals = JSON.stringify(path.join(__dirname, '../../dist/lib/node-internals'))
  const first = spawn(process.execPath, ['-e', `
    const http = require('node:http')
    const { parserIsIdle, detachConnection } = require(${internals})
    let socket
    const server = http.createServer((request, response) => response.end('first'))
    server.on('connection', (s) => {
      socket = s
      process.send({ idleAtAccept: parserIsIdle(s, server) })
    })
    server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
    process.on('message', (message) => {
      // Asked once something was sent: answers once it has read something.
      if (message === 'idle?') {
        const answer = () => socket.bytesRead > 0 ? process.send({ idle: parserIsIdle(socket, server) }) : setTimeout(answer, 5)
        answer()
      }
      if (message === 'move') process.send('connection', detachConnection(socket), () => socket.destroy())
      if (message === 'bye') process.exit(0)
    })
  `], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], timeout: 10000 })
  t.teardown(() => { if (first.exitCode === null) first.kill('SIGKILL') })
  const messages = []
  const handles = []
  first.on('message', (message, handle) => { messages.push(message); if (handle !== undefined) handles.push(handle) })
  const next = async (key) => {
    await waitUntil(() => messages.some((m) => m !== null && typeof m === 'object' && key in m))
    const index = messages.findIndex((m) => m !== null && typeof m === 'object' && key in m)
    return messages.splice(index, 1)[0][key]
  }

  const client = net.connect(await next('port'), '127.0.0.1')
  t.teardown(() => client.destroy())
  let received = ''
  client.on('data', (chunk) => { received += chunk })
  // Accepted, nothing sent yet: Node's list calls it active (its headersTimeout runs), yet it is between messages.
  t.equal(await next('idleAtAccept'), true, 'accepted, nothing read: idle')
  client.write('GET / HTTP/1.1\r\nHo')
  first.send('idle?')
  t.equal(await next('idle'), false, 'half its first request read: not idle')
  client.write('st: a\r\n\r\n')
  await waitUntil(() => received.includes('first'))
  first.send('idle?')
  t.equal(await next('idle'), true, 'answered: idle')

  first.send('move')
  await waitUntil(() => handles.length === 1)
  const moved = socketFromHandle(handles[0])
  second.emit('connection', moved)
  t.equal(parserIsIdle(moved, second), true, 'handed over, nothing read since: idle')
  client.write('GET / HTTP/1.1\r\nHo')
  await waitUntil(() => moved.bytesRead > 0)
  t.equal(parserIsIdle(moved, second), false, 'half a request read since the handover: not idle')
  client.write('st: a\r\n\r\n')
  await waitUntil(() => received.includes('second'))
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(parserIsIdle(moved, second), true, 'answered: idle')
  first.send('bye')
})

test(`http2SessionConnection: the socket the server's connection listener got ('connection' for h2c, 'secureConnection' over TLS) (Node ${process.version})`, async (t) => {
  const http2 = require('node:http2')
  const { execFileSync } = require('node:child_process')
  const { http2SessionConnection } = require('../../dist/lib/node-internals')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-h2-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore', timeout: 30000 })
  for (const tls of [false, true]) {
    const server = tls
      ? http2.createSecureServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) })
      : http2.createServer()
    const accepted = []
    server.on(tls ? 'secureConnection' : 'connection', (socket) => accepted.push(socket))
    const found = new Promise((resolve) => server.once('session', (session) => resolve(http2SessionConnection(session))))
    await listen(server, { host: '127.0.0.1', port: 0 })
    const client = http2.connect(`${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`, { rejectUnauthorized: false })
    client.on('error', () => {})
    const socket = await found
    t.equal(accepted.length, 1, `${tls ? 'TLS' : 'h2c'}: one connection`)
    t.equal(socket, accepted[0], `${tls ? 'TLS' : 'h2c'}: it is that connection`)
    client.destroy()
    server.close()
  }
  t.equal(http2SessionConnection({}), null, 'not a session: null')
})

test(`checkConnectionInternals, currentResponse and idleForMs on a real keep-alive connection (Node ${process.version})`, async (t) => {
  const http = require('node:http')
  const { checkConnectionInternals, currentResponse, idleForMs, timerClock } = require('../../dist/lib/node-internals')
  t.doesNotThrow(() => checkConnectionInternals(), 'the response link and the idle timer are what this module knows')
  const during = []
  const server = http.createServer((request, response) => {
    // While the handler runs: this is the connection's current response, and no idle timer runs.
    during.push({ current: currentResponse(request.socket) === response, idle: idleForMs(request.socket) })
    setTimeout(() => response.end('ok'), 30)
  })
  const accepted = []
  server.on('connection', (socket) => accepted.push(socket))
  await listen(server, { host: '127.0.0.1', port: 0 })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy(); server.closeAllConnections(); return close(server) })
  const get = () => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.address().port, agent }, (res) => { res.resume(); res.on('end', resolve) }).on('error', reject)
  })
  // Bounds on the timers' clock from before each request (the handler answers 30 ms after it came):
  // the client's clock after the response says nothing of when the server finished it on a loaded machine.
  const firstSent = timerClock()
  await get()
  t.same(during, [{ current: true, idle: null }], 'busy: its response, no idle time')
  const socket = accepted[0]
  t.equal(currentResponse(socket), null, 'between requests: no response')
  const justIdle = idleForMs(socket)
  const responseEndedWithin = timerClock() - firstSent - 30
  t.ok(justIdle !== null && justIdle <= responseEndedWithin, `idle since its response (${justIdle} ms; it ended at most ${responseEndedWithin} ms ago)`)
  await new Promise((resolve) => setTimeout(resolve, 250))
  const clock = timerClock()
  const later = idleForMs(socket, clock)
  t.ok(later >= 200 && later < 5000, `idle time grows while nothing is read or written (${later} ms after 250 ms)`)
  t.equal(idleForMs(socket, clock), later, 'the same clock reading gives the same answer')
  const secondSent = timerClock()
  await get()
  const afresh = idleForMs(socket)
  const secondEndedWithin = timerClock() - secondSent - 30
  t.ok(afresh !== null && afresh <= secondEndedWithin, `a new request starts the idle time afresh (${afresh} ms; its response ended at most ${secondEndedWithin} ms ago)`)
  t.equal(currentResponse(new net.Socket()), null, 'a socket that never carried HTTP: no response')
  t.equal(idleForMs(new net.Socket()), null, 'a socket without an idle timer: unknown')
  t.throws(() => currentResponse({ _httpMessage: {} }), { code: 'HOT_RELOAD_NODE_INTERNALS' }, 'something else in _httpMessage fails loudly')
})

test('openResponses finds the responses being written, and isEventStream tells an event stream by the header sent', async (t) => {
  const http = require('node:http')
  const { openResponses, isEventStream } = require('../../dist/lib/node-internals')
  const server = http.createServer((request, response) => {
    if (request.url === '/sse-object') {
      // Headers given to writeHead() as an object are not kept for getHeader(): only the header block has them.
      response.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8' })
      response.write('data: 1\n\n')
    } else if (request.url === '/sse-set') {
      response.setHeader('content-type', 'text/event-stream')
      response.write('data: 1\n\n')
    } else if (request.url === '/ndjson') {
      response.writeHead(200, { 'content-type': 'application/x-ndjson' })
      response.write('{}\n')
    } else {
      response.end('done')
    }
  })
  await listen(server, { host: '127.0.0.1', port: 0 })
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(() => { agent.destroy(); server.closeAllConnections(); return close(server) })
  const get = (path) => new Promise((resolve) => http.get({ host: '127.0.0.1', port: server.address().port, path, agent }, (response) => {
    response.once('data', () => resolve(response))
  }))
  await Promise.all(['/sse-object', '/sse-set', '/ndjson', '/done'].map(get))
  const open = openResponses(server)
  t.same(open.map((r) => r.req.url).sort(), ['/ndjson', '/sse-object', '/sse-set'], `the three open responses (Node ${process.version}), not the one done`)
  t.same(open.filter(isEventStream).map((r) => r.req.url).sort(), ['/sse-object', '/sse-set'], 'the two event streams')
  t.same(openResponses(net.createServer()), [], 'a server without HTTP connections: none')
})

'use strict'
// lib/listeners.ts: a drain stops accepting and holds Node's closeIdleConnections() (the drain
// closes each idle connection itself); a resume listens again and lets it go. In-process, a real
// Fastify server on 127.0.0.1 and a real keep-alive client.
const http = require('node:http')
const { once } = require('node:events')
const { test } = require('tap')
const Fastify = require('fastify')
const { Listeners } = require('../../dist/lib/listeners')
const { InheritedPool } = require('../../dist/lib/socket-adoption')

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
// closeIdleConnections() again and again, as a drain's close may call it at any moment: some calls
// come after the server has seen the connection go idle, whenever that is on a loaded machine.
function keepClosingIdle (t, server) {
  const timer = setInterval(() => server.closeIdleConnections(), 10)
  const stop = () => clearInterval(timer)
  t.teardown(stop)
  return stop
}

async function setup (t) {
  const app = Fastify()
  app.get('/', async () => 'ok')
  const listeners = new Listeners(app, new InheritedPool([]), () => {}, async () => true)
  t.teardown(() => listeners.stopIntercepting())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = app.server.address().port
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => {
    agent.destroy()
    app.server.closeAllConnections()
    if (app.server.listening) app.server.close()
  })
  const get = () => new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, agent }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode, socket: req.socket }))
    })
    req.on('error', reject)
  })
  return { app, listeners, get }
}

test('stopping accepting gives the server no property of its own (V8 keeps its optimized code for the request path)', async (t) => {
  const { app, listeners, get } = await setup(t)
  await get()
  const before = Reflect.ownKeys(app.server).map(String)
  listeners.stopAccepting(false)
  t.equal(app.server.listening, false, 'no longer accepting')
  t.same(Reflect.ownKeys(app.server).map(String), before, 'the same own properties as before the drain')
  const { status } = await get()
  t.equal(status, 200, 'the open keep-alive connection is still served')
})

test('while a drain holds it, closeIdleConnections() (what Fastify\'s close calls) leaves idle connections open; after listening again it closes them', async (t) => {
  const { app, listeners, get } = await setup(t)
  const { socket } = await get()
  let closed = false
  socket.on('close', () => { closed = true })
  listeners.stopAccepting(false)
  const stopHeld = keepClosingIdle(t, app.server)
  await delay(200)
  stopHeld()
  t.equal(closed, false, 'the idle connection stays open while the drain holds it')
  const again = await get()
  t.equal(again.socket, socket, 'and serves its next request')
  t.equal(again.status, 200)

  const missing = listeners.listenAgain(new Map())
  t.equal(missing.length, 1, 'no copy came back for its address')
  const closing = once(socket, 'close')
  const stop = keepClosingIdle(t, app.server)
  await closing
  stop()
  t.pass('once the drain let go, closeIdleConnections() closes the idle connection')
})

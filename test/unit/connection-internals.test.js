'use strict'
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { listeningFd, setPipeName, listeningHandle } = require('../../dist/lib/node-internals')
const { addressOfFd } = require('../../dist/lib/socket-activation')

function tmp (t) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-unit-')))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

// These fail loudly when a Node version changes the internals the handoff relies on.
test('Node internals: the fd and handle of a listening server, the pipe name', async (t) => {
  t.comment(`Node ${process.version}`)
  const server = net.createServer()
  t.throws(() => listeningFd(server), { code: 'HOT_RELOAD_NODE_INTERNALS' }, 'not listening: no fd')
  await new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  t.teardown(() => server.close())
  const fd = listeningFd(server)
  t.ok(Number.isInteger(fd) && fd >= 3)
  t.ok(fs.fstatSync(fd).isSocket())
  t.equal(listeningHandle(server).fd, fd)
  t.same(addressOfFd(fd), { kind: 'tcp', address: '127.0.0.1', port: server.address().port }, '/proc knows the address')

  const dir = tmp(t)
  const pipe = net.createServer()
  await new Promise((resolve) => pipe.listen(path.join(dir, 'a.sock'), resolve))
  t.teardown(() => pipe.close())
  setPipeName(pipe, '/somewhere/else.sock')
  t.equal(pipe.address(), '/somewhere/else.sock')
  t.same(addressOfFd(listeningFd(pipe)), { kind: 'unix', path: path.join(dir, 'a.sock') })
  t.equal(addressOfFd(987654), null)
})

test('Node internals: an accepted HTTP connection can be detached and served by another server', async (t) => {
  const http = require('node:http')
  const { detachConnection, socketFromHandle } = require('../../dist/lib/node-internals')
  const first = http.createServer((req, res) => res.end('first'))
  const second = http.createServer((req, res) => res.end('second'))
  await new Promise((resolve) => first.listen({ host: '127.0.0.1', port: 0 }, resolve))
  t.teardown(() => { first.close(); second.close() })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  let opened = 0
  const create = agent.createConnection.bind(agent)
  agent.createConnection = (...args) => { opened++; return create(...args) }
  const get = () => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: first.address().port, agent }, (res) => {
      let body = ''
      res.on('data', (chunk) => { body += chunk })
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
  const accepted = new Promise((resolve) => first.once('connection', resolve))
  t.equal(await get(), 'first')
  const socket = await accepted
  const handle = detachConnection(socket)
  t.ok(handle, 'detached')
  second.emit('connection', socketFromHandle(handle))
  t.equal(await get(), 'second', 'the next request on the same connection reaches the other server')
  t.equal(opened, 1, 'one connection throughout')
})

test('Node internals: a detached connection whose handoff failed is read again by its own server', async (t) => {
  const http = require('node:http')
  const { detachConnection, reattachConnection } = require('../../dist/lib/node-internals')
  const server = http.createServer((req, res) => res.end('same'))
  await new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  t.teardown(() => server.close())
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const get = () => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.address().port, agent }, (res) => {
      let body = ''
      res.on('data', (chunk) => { body += chunk })
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
  const accepted = new Promise((resolve) => server.once('connection', resolve))
  t.equal(await get(), 'same')
  const socket = await accepted
  t.ok(detachConnection(socket))
  const next = get() // written while nobody reads: it waits in the kernel
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(reattachConnection(socket), 'reattached')
  t.equal(await next, 'same', 'the request that arrived meanwhile is answered')
})

test('Node internals: HTTP/2 and TLS connections are not detachable', async (t) => {
  const { detachConnection } = require('../../dist/lib/node-internals')
  const net = require('node:net')
  const plain = new net.Socket()
  t.equal(detachConnection(plain), null, 'no HTTP/1 parser (an HTTP/2 session, or not HTTP at all)')
  const tls = Object.assign(new net.Socket(), { encrypted: true, parser: { unconsume () {} } })
  t.equal(detachConnection(tls), null, 'TLS')
})

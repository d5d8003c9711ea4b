'use strict'
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { logicalCwd, rebaseScript } = require('../../dist/lib/launch')
const { listeningFd, setPipeName, listeningHandle } = require('../../dist/lib/node-internals')
const { addressOfFd } = require('../../dist/lib/socket-activation')

function tmp (t) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-unit-')))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('the logical working directory follows a current symlink', async (t) => {
  const dir = tmp(t)
  fs.mkdirSync(path.join(dir, 'releases/v1'), { recursive: true })
  fs.symlinkSync('releases/v1', path.join(dir, 'current'))
  const real = path.join(dir, 'releases/v1')
  t.equal(logicalCwd(path.join(dir, 'current'), real), path.join(dir, 'current'))
  t.equal(logicalCwd(dir, real), real, 'a PWD naming another directory is ignored')
  t.equal(logicalCwd('current', real), real, 'a relative PWD is ignored')
  t.equal(logicalCwd(undefined, real), real)
  t.equal(rebaseScript(path.join(real, 'app.js'), real, path.join(dir, 'current')), path.join(dir, 'current/app.js'))
  t.equal(rebaseScript('/elsewhere/app.js', real, path.join(dir, 'current')), '/elsewhere/app.js')
  t.equal(rebaseScript(path.join(real, 'app.js'), real, real), path.join(real, 'app.js'))
})

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

'use strict'
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { readHandoff, handoffEnv, clearHandoffEnv, fdKind, ENV } = require('../../dist/lib/handoff-env')

const socketFds = () => 'socket'

test('no marker, no handoff', async (t) => {
  t.equal(readHandoff({ LISTEN_FDS: '2' }, socketFds), null, 'LISTEN_FDS alone (e.g. systemd for someone else) is not ours')
})

test('round trip', async (t) => {
  const addresses = [{ kind: 'tcp', address: '127.0.0.1', port: 3000 }, { kind: 'tcp', address: '::1', port: 3000 }, { kind: 'unix', path: '/tmp/a.sock' }]
  const env = handoffEnv(addresses, 4, 1234, true)
  const handoff = readHandoff(env, socketFds)
  t.equal(handoff.generation, 4)
  t.equal(handoff.parentPid, 1234)
  t.equal(handoff.supervised, true)
  t.same(handoff.sockets.map((s) => s.fd), [3, 4, 5])
  t.same(handoff.sockets.map((s) => s.address), addresses)
  t.equal(env.LISTEN_PID, undefined)
  t.equal(readHandoff(handoffEnv([], 1, 9), socketFds).supervised, false)
})

const base = handoffEnv([{ kind: 'tcp', address: '127.0.0.1', port: 3000 }], 2, 99)
for (const [change, variable, message] of [
  [{ LISTEN_FDS: 'abc' }, 'LISTEN_FDS', /expected the number of inherited sockets/],
  [{ LISTEN_FDS: '-1' }, 'LISTEN_FDS', /got "-1"/],
  [{ LISTEN_FDS: '5000' }, 'LISTEN_FDS', /0 to 1024/],
  [{ LISTEN_FDS: undefined }, 'LISTEN_FDS', /got undefined/],
  [{ LISTEN_FDS: '2' }, 'LISTEN_FDNAMES', /expected 2 names/],
  [{ LISTEN_FDNAMES: 'http' }, 'LISTEN_FDNAMES', /not an encoded listening address/],
  [{ FASTIFY_HOT_RELOAD_GENERATION: '0' }, 'FASTIFY_HOT_RELOAD_GENERATION', /1 or more/],
  [{ FASTIFY_HOT_RELOAD_GENERATION: undefined }, 'FASTIFY_HOT_RELOAD_GENERATION', /got undefined/],
  [{ FASTIFY_HOT_RELOAD_PARENT: 'abc' }, 'FASTIFY_HOT_RELOAD_PARENT', /the parent's pid/],
  [{ FASTIFY_HOT_RELOAD_SUPERVISED: 'yes' }, 'FASTIFY_HOT_RELOAD_SUPERVISED', /expected 1 or nothing/]
]) {
  test(`malformed ${variable}: ${JSON.stringify(change)}`, async (t) => {
    t.throws(() => readHandoff({ ...base, ...change }, socketFds), { code: 'HOT_RELOAD_INVALID_HANDOFF', message: new RegExp(`${variable}: `) })
    t.throws(() => readHandoff({ ...base, ...change }, socketFds), { message })
  })
}

test('fds that are files or closed', async (t) => {
  t.throws(() => readHandoff(base, () => 'file'), { message: /LISTEN_FDS: fd 3 .* is not a socket/ })
  t.throws(() => readHandoff(base, () => 'closed'), { message: /LISTEN_FDS: fd 3 .* is not open/ })
})

test('fdKind reads the real fd table', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-unit-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = fs.openSync(path.join(dir, 'f'), 'w')
  t.teardown(() => fs.closeSync(file))
  t.equal(fdKind(file), 'file')
  t.equal(fdKind(987654), 'closed')
  const server = net.createServer()
  await new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  t.teardown(() => server.close())
  t.equal(fdKind(server._handle.fd), 'socket')
})

test('clearHandoffEnv removes every handoff variable', async (t) => {
  const env = { ...handoffEnv([], 2, 1, true), LISTEN_PID: '5', KEEP: 'x' }
  clearHandoffEnv(env)
  t.same(env, { KEEP: 'x' })
  t.same(Object.values(ENV).sort(), ['FASTIFY_HOT_RELOAD_GENERATION', 'FASTIFY_HOT_RELOAD_PARENT', 'FASTIFY_HOT_RELOAD_SUPERVISED', 'LISTEN_FDNAMES', 'LISTEN_FDS', 'LISTEN_PID'])
})

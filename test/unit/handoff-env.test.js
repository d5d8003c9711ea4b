'use strict'
// lib/handoff-env.ts: the environment that hands listening sockets to a successor (LISTEN_FDS,
// LISTEN_FDNAMES, our generation and parent markers), read back with readHandoff.
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { readHandoff, handoffEnv, clearHandoffEnv, fdKind, ENV, FIRST_FD } = require('../../dist/lib/handoff-env')

const socketFds = () => 'socket'

function thrown (fn) {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

test('no FASTIFY_HOT_RELOAD_PARENT, no handoff', async (t) => {
  t.equal(readHandoff({}, socketFds), null, 'an empty environment')
  t.equal(readHandoff({ LISTEN_FDS: '2', LISTEN_FDNAMES: 'http:https', LISTEN_PID: '1' }, socketFds), null,
    'LISTEN_FDS alone (systemd socket activation, or for another process) is not ours')
  t.equal(readHandoff({ FASTIFY_HOT_RELOAD_GENERATION: 'garbage', LISTEN_FDS: 'garbage' }, socketFds), null,
    'nothing else is read without the parent marker')
  let inspected = false
  readHandoff({ LISTEN_FDS: '1', LISTEN_FDNAMES: '127.0.0.1%3A1' }, () => { inspected = true; return 'socket' })
  t.notOk(inspected, 'no fd is inspected')
})

test('handoffEnv → readHandoff round trip', async (t) => {
  const addresses = [
    { kind: 'tcp', address: '127.0.0.1', port: 3000 },
    { kind: 'tcp', address: '::1', port: 3000 },
    { kind: 'unix', path: '/run/app:v1/a.sock' }
  ]
  const env = handoffEnv(addresses, 2, 1234)
  t.equal(env.LISTEN_FDS, '3')
  t.equal(env.LISTEN_FDNAMES.split(':').length, 3, 'one name per socket, separated by ":"')
  t.equal(env.FASTIFY_HOT_RELOAD_GENERATION, '2')
  t.equal(env.FASTIFY_HOT_RELOAD_PARENT, '1234')
  t.ok('LISTEN_PID' in env && env.LISTEN_PID === undefined, 'LISTEN_PID is removed (unknown before the spawn)')
  t.equal(env.FASTIFY_HOT_RELOAD_SUPERVISED, undefined, 'not supervised by default')

  const inspected = []
  const handoff = readHandoff(env, (fd) => { inspected.push(fd); return 'socket' })
  t.equal(FIRST_FD, 3)
  t.same(inspected, [3, 4, 5], 'every fd is inspected')
  t.equal(handoff.generation, 2)
  t.equal(handoff.parentPid, 1234)
  t.equal(handoff.supervised, false)
  t.same(handoff.sockets.map((s) => s.fd), [3, 4, 5], 'fds from 3, in order')
  t.same(handoff.sockets.map((s) => s.address), addresses, 'the addresses, in order')
  t.same(handoff.sockets.map((s) => s.name), env.LISTEN_FDNAMES.split(':'), 'the names as given')
})

test('supervised, and no sockets', async (t) => {
  const supervised = readHandoff(handoffEnv([{ kind: 'tcp', address: '0.0.0.0', port: 80 }], 7, 42, true), socketFds)
  t.equal(supervised.supervised, true)
  t.equal(supervised.generation, 7)
  const none = readHandoff(handoffEnv([], 3, 9), socketFds)
  t.same(none.sockets, [])
  t.equal(none.generation, 3)
  t.equal(none.parentPid, 9)
})

test('generation 1 is valid: the supervisor starts its first worker with a handoff', async (t) => {
  const handoff = readHandoff(handoffEnv([{ kind: 'tcp', address: '127.0.0.1', port: 3000 }], 1, 77, true), socketFds)
  t.equal(handoff.generation, 1)
})

const base = handoffEnv([{ kind: 'tcp', address: '127.0.0.1', port: 3000 }, { kind: 'unix', path: '/tmp/a.sock' }], 2, 99)

// [change to a good environment, the variable the message names, what else it says]
const malformed = [
  [{ LISTEN_FDS: 'abc' }, 'LISTEN_FDS', /expected the number of inherited sockets \(0 to 1024\), got "abc"/],
  [{ LISTEN_FDS: '-1' }, 'LISTEN_FDS', /got "-1"/],
  [{ LISTEN_FDS: '1.5' }, 'LISTEN_FDS', /got "1\.5"/],
  [{ LISTEN_FDS: '' }, 'LISTEN_FDS', /got ""/],
  [{ LISTEN_FDS: '5000' }, 'LISTEN_FDS', /0 to 1024.*got "5000"/],
  [{ LISTEN_FDS: undefined }, 'LISTEN_FDS', /got undefined/],
  [{ LISTEN_FDS: '3' }, 'LISTEN_FDNAMES', /expected 3 names separated by ":"/],
  [{ LISTEN_FDS: '1' }, 'LISTEN_FDNAMES', /expected 1 names/],
  [{ LISTEN_FDNAMES: undefined }, 'LISTEN_FDNAMES', /expected 2 names.*got ""/],
  [{ LISTEN_FDNAMES: '127.0.0.1%3A3000' }, 'LISTEN_FDNAMES', /expected 2 names/],
  [{ LISTEN_FDNAMES: 'http:https' }, 'LISTEN_FDNAMES', /name 1 \("http"\) is not an encoded listening address/],
  [{ LISTEN_FDNAMES: '127.0.0.1%3A3000:%E0%A4%A' }, 'LISTEN_FDNAMES', /name 2 \("%E0%A4%A"\) is not an encoded listening address/],
  [{ LISTEN_FDNAMES: '127.0.0.1%3A3000:' }, 'LISTEN_FDNAMES', /name 2 \(""\)/],
  [{ FASTIFY_HOT_RELOAD_GENERATION: '0' }, 'FASTIFY_HOT_RELOAD_GENERATION', /expected a whole number of 1 or more, got "0"/],
  [{ FASTIFY_HOT_RELOAD_GENERATION: 'x' }, 'FASTIFY_HOT_RELOAD_GENERATION', /got "x"/],
  [{ FASTIFY_HOT_RELOAD_GENERATION: '-2' }, 'FASTIFY_HOT_RELOAD_GENERATION', /got "-2"/],
  [{ FASTIFY_HOT_RELOAD_GENERATION: '2.0' }, 'FASTIFY_HOT_RELOAD_GENERATION', /got "2\.0"/],
  [{ FASTIFY_HOT_RELOAD_GENERATION: '' }, 'FASTIFY_HOT_RELOAD_GENERATION', /got ""/],
  [{ FASTIFY_HOT_RELOAD_GENERATION: undefined }, 'FASTIFY_HOT_RELOAD_GENERATION', /got undefined/],
  [{ FASTIFY_HOT_RELOAD_PARENT: 'abc' }, 'FASTIFY_HOT_RELOAD_PARENT', /expected the parent's pid, got "abc"/],
  [{ FASTIFY_HOT_RELOAD_PARENT: '0' }, 'FASTIFY_HOT_RELOAD_PARENT', /got "0"/],
  [{ FASTIFY_HOT_RELOAD_PARENT: '' }, 'FASTIFY_HOT_RELOAD_PARENT', /got ""/],
  [{ FASTIFY_HOT_RELOAD_PARENT: '12 ' }, 'FASTIFY_HOT_RELOAD_PARENT', /got "12 "/],
  [{ FASTIFY_HOT_RELOAD_SUPERVISED: 'yes' }, 'FASTIFY_HOT_RELOAD_SUPERVISED', /expected 1 or nothing, got "yes"/]
]

for (const [change, variable, message] of malformed) {
  test(`malformed ${variable}: ${JSON.stringify(change, (k, v) => (v === undefined ? '(unset)' : v))}`, async (t) => {
    const env = { ...base, ...change }
    for (const [key, value] of Object.entries(change)) if (value === undefined) delete env[key]
    const error = thrown(() => readHandoff(env, socketFds))
    t.ok(error instanceof Error, 'throws an Error')
    t.equal(error?.code, 'HOT_RELOAD_INVALID_HANDOFF')
    t.match(error?.message, new RegExp(`^fastify-hot-reload: ${variable}: `), `names ${variable}`)
    t.match(error?.message, message)
  })
}

test('an inherited fd that is a file, or not open', async (t) => {
  const file = thrown(() => readHandoff(base, () => 'file'))
  t.equal(file?.code, 'HOT_RELOAD_INVALID_HANDOFF')
  t.match(file?.message, /^fastify-hot-reload: LISTEN_FDS: fd 3 \("127\.0\.0\.1%3A3000"\) is not a socket$/)

  const closed = thrown(() => readHandoff(base, () => 'closed'))
  t.equal(closed?.code, 'HOT_RELOAD_INVALID_HANDOFF')
  t.match(closed?.message, /^fastify-hot-reload: LISTEN_FDS: fd 3 \("127\.0\.0\.1%3A3000"\) is not open$/)

  const second = thrown(() => readHandoff(base, (fd) => (fd === 4 ? 'closed' : 'socket')))
  t.match(second?.message, /fd 4 \("unix%3A%2Ftmp%2Fa\.sock"\) is not open/, 'names the fd that is wrong')
  const secondFile = thrown(() => readHandoff(base, (fd) => (fd === 4 ? 'file' : 'socket')))
  t.match(secondFile?.message, /fd 4 .* is not a socket/)
})

test('fdKind reads the real fd table', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-unit-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'regular')
  fs.writeFileSync(file, 'x')
  const fd = fs.openSync(file, 'r')
  try {
    t.equal(fdKind(fd), 'file', 'a regular file')
  } finally {
    fs.closeSync(fd)
  }
  t.equal(fdKind(987), 'closed', 'an fd number nothing opened')

  const server = net.createServer()
  await new Promise((resolve, reject) => server.once('error', reject).listen({ host: '127.0.0.1', port: 0 }, resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  t.equal(fdKind(server._handle.fd), 'socket', 'a listening TCP socket')
  t.equal(readHandoff(handoffEnv([], 2, 1), fdKind).sockets.length, 0, 'the default inspector is fdKind')
})

test('clearHandoffEnv removes every handoff variable and nothing else', async (t) => {
  const env = {
    ...handoffEnv([{ kind: 'tcp', address: '127.0.0.1', port: 3000 }], 2, 1, true, 2),
    LISTEN_PID: '5',
    FASTIFY_HOT_RELOAD_SLOT: '1',
    FASTIFY_HOT_RELOAD_REUSEPORT: '1',
    PATH: '/usr/bin',
    NODE_ENV: 'production'
  }
  for (const name of ['LISTEN_FDS', 'LISTEN_FDNAMES', 'LISTEN_PID', 'FASTIFY_HOT_RELOAD_PARENT', 'FASTIFY_HOT_RELOAD_GENERATION', 'FASTIFY_HOT_RELOAD_SUPERVISED', 'FASTIFY_HOT_RELOAD_INSTANCES', 'FASTIFY_HOT_RELOAD_SLOT']) {
    t.ok(env[name] !== undefined, `${name} set before`)
  }
  clearHandoffEnv(env)
  t.same(env, { PATH: '/usr/bin', NODE_ENV: 'production' })
  t.same(Object.values(ENV).sort(), ['FASTIFY_HOT_RELOAD_DRAIN_TIMEOUT', 'FASTIFY_HOT_RELOAD_GENERATION', 'FASTIFY_HOT_RELOAD_INSTANCES', 'FASTIFY_HOT_RELOAD_PARENT', 'FASTIFY_HOT_RELOAD_REUSEPORT', 'FASTIFY_HOT_RELOAD_SLOT', 'FASTIFY_HOT_RELOAD_SUPERVISED', 'LISTEN_FDNAMES', 'LISTEN_FDS', 'LISTEN_PID'])
  t.equal(readHandoff(env, socketFds), null, 'nothing left to read')
})

test('how many instances the sockets come from: said when more than one, 1 when not said (an older release)', async (t) => {
  const addresses = [{ kind: 'tcp', address: '127.0.0.1', port: 3000 }, { kind: 'tcp', address: '127.0.0.1', port: 9000 }]
  const one = handoffEnv(addresses, 2, 1)
  t.equal(one.FASTIFY_HOT_RELOAD_INSTANCES, undefined, 'one instance: the environment an older release wrote')
  t.equal(readHandoff(one, socketFds).instances, 1)
  const two = handoffEnv(addresses, 2, 1, false, 2)
  t.equal(two.FASTIFY_HOT_RELOAD_INSTANCES, '2')
  t.equal(readHandoff(two, socketFds).instances, 2)
  t.equal(readHandoff(handoffEnv(addresses, 2, 1, true, 2), socketFds).instances, 2, 'supervised too')
  for (const bad of ['0', '-1', 'two', '1.5', '']) {
    const error = thrown(() => readHandoff({ ...two, FASTIFY_HOT_RELOAD_INSTANCES: bad }, socketFds))
    t.equal(error?.code, 'HOT_RELOAD_INVALID_HANDOFF', `${JSON.stringify(bad)} is refused`)
    t.match(error?.message, /FASTIFY_HOT_RELOAD_INSTANCES/)
  }
})

test('FASTIFY_HOT_RELOAD_SLOT: a supervised worker\'s slot, or a clear error', async (t) => {
  const base = handoffEnv([], 3, 1, true)
  t.equal(readHandoff(base, socketFds).slot, undefined, 'not said: undefined')
  t.equal(readHandoff({ ...base, FASTIFY_HOT_RELOAD_SLOT: '0' }, socketFds).slot, 0)
  t.equal(readHandoff({ ...base, FASTIFY_HOT_RELOAD_SLOT: '2' }, socketFds).slot, 2)
  for (const bad of ['-1', '01', 'x', '']) {
    const err = thrown(() => readHandoff({ ...base, FASTIFY_HOT_RELOAD_SLOT: bad }, socketFds))
    t.match(err?.message, /FASTIFY_HOT_RELOAD_SLOT: expected a whole number of 0 or more/, `${JSON.stringify(bad)} is refused`)
  }
})

test('FASTIFY_HOT_RELOAD_DRAIN_TIMEOUT: the supervisor\'s bound on a drain, or a clear error', async (t) => {
  const base = handoffEnv([], 1, 4242, true)
  t.equal(readHandoff(base, socketFds).drainTimeout, undefined, 'not said: no bound')
  t.equal(readHandoff({ ...base, FASTIFY_HOT_RELOAD_DRAIN_TIMEOUT: '8000' }, socketFds).drainTimeout, 8000)
  for (const bad of ['', '0', '-1', '8s', '1.5', '99999999999']) {
    const err = thrown(() => readHandoff({ ...base, FASTIFY_HOT_RELOAD_DRAIN_TIMEOUT: bad }, socketFds))
    t.match(err?.message, /FASTIFY_HOT_RELOAD_DRAIN_TIMEOUT: expected a whole number of milliseconds/, `${JSON.stringify(bad)} is refused`)
  }
})

test('FASTIFY_HOT_RELOAD_REUSEPORT: bind everything with SO_REUSEPORT, or these addresses; anything else is a clear error', async (t) => {
  const { InheritedPool } = require('../../dist/lib/socket-adoption')
  const base = handoffEnv([], 2, 1, true)
  t.equal(readHandoff(base, socketFds).reusePort, undefined, 'not asked')
  t.same(readHandoff({ ...base, FASTIFY_HOT_RELOAD_REUSEPORT: '1' }, socketFds).reusePort, { all: true, addresses: [] })
  const plan = readHandoff({ ...base, FASTIFY_HOT_RELOAD_REUSEPORT: '127.0.0.1%3A3000:%5B%3A%3A1%5D%3A3000' }, socketFds).reusePort
  t.same(plan.addresses, [{ kind: 'tcp', address: '127.0.0.1', port: 3000 }, { kind: 'tcp', address: '::1', port: 3000 }])
  for (const bad of ['', 'yes', '127.0.0.1', 'unix%3A%2Ftmp%2Fs.sock']) {
    const err = thrown(() => readHandoff({ ...base, FASTIFY_HOT_RELOAD_REUSEPORT: bad }, socketFds))
    t.match(err?.message, /FASTIFY_HOT_RELOAD_REUSEPORT: expected 1 or TCP addresses/, `${JSON.stringify(bad)} is refused`)
  }
  // The pool binds the slot's address whatever port the app asks (0 included), once.
  const pool = new InheritedPool([], plan)
  t.same(pool.reuseBind({ kind: 'tcp', host: '::1', port: 0 }, ['::1']), { host: '::1', port: 3000 }, 'port 0 asked: the slot\'s port')
  t.equal(pool.reuseBind({ kind: 'tcp', host: '::1', port: 0 }, ['::1']), undefined, 'each address once')
  t.equal(pool.reuseBind({ kind: 'tcp', host: '127.0.0.1', port: 4000 }, ['127.0.0.1']), undefined, 'another port asked: an ordinary bind')
  t.same(new InheritedPool([], { all: true, addresses: [] }).reuseBind({ kind: 'tcp', host: undefined, port: 8080 }, ['::', '0.0.0.0']), {}, 'all: as asked')
  t.equal(new InheritedPool([]).reuseBind({ kind: 'tcp', host: undefined, port: 8080 }, ['::']), undefined, 'no plan: ordinary')
})

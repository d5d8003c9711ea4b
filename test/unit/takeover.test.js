'use strict'
// lib/takeover.ts: when a successor with several Fastify instances has taken over, and what the
// next successor inherits.
const { test } = require('tap')
const { takeoverStep, socketsForSuccessor, unclaimedMessage } = require('../../dist/lib/takeover')

test('done once every inherited socket is claimed; unclaimed only once as many instances listened as before', async (t) => {
  t.equal(takeoverStep(1, 1, 0), 'done', 'one instance, everything claimed')
  t.equal(takeoverStep(1, 1, 1), 'unclaimed', 'one instance: a socket left is an error at once, as before')
  t.equal(takeoverStep(2, 1, 1), 'wait', 'the second instance has not listened yet')
  t.equal(takeoverStep(2, 2, 1), 'unclaimed', 'both listened and a socket is left: it would go dark')
  t.equal(takeoverStep(2, 1, 0), 'done', 'one instance claimed every socket (a release that merged them)')
  t.equal(takeoverStep(1, 2, 0), 'done', 'a new instance in this release')
  t.equal(takeoverStep(1, 0, 0), 'done', 'nothing inherited (a first generation)')
})

test('the next successor inherits every listening instance\'s sockets, in order, and their count', async (t) => {
  const a = { kind: 'tcp', address: '127.0.0.1', port: 3000 }
  const b = { kind: 'tcp', address: '::1', port: 3000 }
  const c = { kind: 'tcp', address: '127.0.0.1', port: 9000 }
  t.same(socketsForSuccessor([[{ address: a, fd: 20 }]]), { sockets: { addresses: [a], fds: [20] }, instances: 1 })
  t.same(socketsForSuccessor([[{ address: a, fd: 20 }, { address: b, fd: 21 }], [], [{ address: c, fd: 22 }]]),
    { sockets: { addresses: [a, b, c], fds: [20, 21, 22] }, instances: 2 }, 'an instance that does not listen is not counted')
  t.throws(() => socketsForSuccessor([[], []]), { code: 'HOT_RELOAD_NO_LISTENERS' })
  t.throws(() => socketsForSuccessor([]), { code: 'HOT_RELOAD_NO_LISTENERS' })
  t.throws(() => socketsForSuccessor([[{ address: null, fd: 3 }]]), { code: 'HOT_RELOAD_NO_LISTENERS' })
})

test('the unclaimed message names the sockets left and what the instances listen on', async (t) => {
  const message = unclaimedMessage([{ fd: 4, name: 'x', address: { kind: 'tcp', address: '127.0.0.1', port: 9000 } }],
    [{ kind: 'tcp', address: '127.0.0.1', port: 3000 }, { kind: 'tcp', address: '127.0.0.1', port: 9001 }])
  t.match(message, /127\.0\.0\.1:9000 \(fd 4\)/)
  t.match(message, /127\.0\.0\.1:3000, 127\.0\.0\.1:9001/)
  t.match(unclaimedMessage([{ fd: 3, name: 'x', address: { kind: 'unix', path: '/tmp/a.sock' } }], []), /listens on nothing/)
})

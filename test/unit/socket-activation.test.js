'use strict'
// lib/socket-activation.ts: what is read from systemd's variables before any fd is looked at.
const { test } = require('tap')
const { readSocketActivation } = require('../../dist/lib/socket-activation')

function thrown (fn) {
  try { fn() } catch (err) { return err }
  return undefined
}

test('LISTEN_PID of another process, or none: not ours, nothing is read (the systemd convention)', async (t) => {
  t.equal(readSocketActivation({ LISTEN_FDS: '1' }, 4242), null, 'no LISTEN_PID')
  t.equal(readSocketActivation({ LISTEN_PID: '4243', LISTEN_FDS: '1' }, 4242), null, 'another pid')
  t.equal(readSocketActivation({ LISTEN_PID: '4243', LISTEN_FDS: 'garbage', LISTEN_FDNAMES: 'a:b:c' }, 4242), null, 'another pid: not even validated')
  t.equal(readSocketActivation({ LISTEN_PID: ' 4242', LISTEN_FDS: '1' }, 4242), null, 'not exactly our pid')
  t.equal(readSocketActivation({ LISTEN_PID: '4242', LISTEN_FDS: '1', FASTIFY_HOT_RELOAD_PARENT: '1' }, 4242), null, 'a handoff from a previous generation is read elsewhere')
  t.same(readSocketActivation({ LISTEN_PID: '4242', LISTEN_FDS: '0' }, 4242), [], 'ours, no socket')
})

test('a malformed LISTEN_FDS or a LISTEN_FDNAMES of another length: a clear error before any fd is used', async (t) => {
  for (const fds of ['abc', '', '-1', '2x', ' 1', '1.0', '1025', undefined]) {
    const err = thrown(() => readSocketActivation({ LISTEN_PID: '4242', LISTEN_FDS: fds }, 4242))
    t.equal(err?.code, 'HOT_RELOAD_INVALID_HANDOFF', `LISTEN_FDS=${JSON.stringify(fds)}`)
    t.match(err?.message, /^fastify-hot-reload: LISTEN_FDS: expected the number of sockets systemd passed, got /)
  }
  for (const [fds, names] of [['2', 'http'], ['1', 'http:https'], ['2', ''], ['3', 'a::b:c']]) {
    const err = thrown(() => readSocketActivation({ LISTEN_PID: '4242', LISTEN_FDS: fds, LISTEN_FDNAMES: names }, 4242))
    t.equal(err?.code, 'HOT_RELOAD_INVALID_HANDOFF')
    t.equal(err?.message, `fastify-hot-reload: LISTEN_FDNAMES: expected ${fds} names separated by ":" (one per LISTEN_FDS socket), got ${JSON.stringify(names)}`,
      `LISTEN_FDS=${fds} LISTEN_FDNAMES=${JSON.stringify(names)}`)
  }
  t.same(readSocketActivation({ LISTEN_PID: '4242', LISTEN_FDS: '0', LISTEN_FDNAMES: 'stale' }, 4242), [], 'no socket: the names do not matter')
})

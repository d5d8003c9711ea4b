'use strict'
// lib/supervisor/held-sockets.ts: which listening sockets the supervisor keeps, and that a copy it
// does not keep is closed (an open copy would keep the socket listening with nobody accepting).
const { test } = require('tap')
const { HeldSockets } = require('../../dist/lib/supervisor/held-sockets')

function fakeHandle (fd) {
  return { fd, closed: false, close () { this.closed = true } }
}

test('the first copy of an address is kept; a second copy of it is closed, not kept', async (t) => {
  const held = new HeldSockets([], 1, '26.12.1')
  const first = fakeHandle(10)
  const second = fakeHandle(11)
  t.equal(held.hold(0, '127.0.0.1:3000', first), '127.0.0.1:3000', 'the first is kept')
  t.equal(first.closed, false)
  t.equal(held.hold(0, '127.0.0.1:3000', second), undefined, 'the second is not')
  t.equal(second.closed, true, 'and closed')
  t.same(held.all().map((s) => s.fd), [10], 'one socket held')
  held.closeAll()
  t.equal(first.closed, true, 'closeAll closes what is held')
})

test('a copy with a name that is no address is closed too', async (t) => {
  const held = new HeldSockets([], 1, '26.12.1')
  const handle = fakeHandle(12)
  t.equal(held.hold(0, 'not an address', handle), null)
  t.equal(handle.closed, true)
  t.same(held.all(), [])
})

test('a socket per slot (SO_REUSEPORT): each slot keeps its own copy of the same address', async (t) => {
  const held = new HeldSockets([], 2, '26.12.1')
  const slot0 = fakeHandle(20)
  const slot1 = fakeHandle(21)
  t.equal(held.hold(0, '127.0.0.1:3000', slot0), '127.0.0.1:3000')
  t.equal(held.hold(1, '127.0.0.1:3000', slot1), '127.0.0.1:3000')
  t.same([slot0.closed, slot1.closed], [false, false], 'neither is closed')
  t.same(held.forSlot(1).map((s) => s.fd), [21])
})

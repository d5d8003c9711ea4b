'use strict'
// lib/supervisor/empty-slots.ts and lib/supervisor/balance.ts with fake workers: which worker covers
// an empty slot and when it stops, and which worker is asked to shed how many connections.
const { test } = require('tap')
const { EmptySlots } = require('../../dist/lib/supervisor/empty-slots')
const { KeepAliveBalance } = require('../../dist/lib/supervisor/balance')

const log = { info () {}, warn () {}, error () {} }

function fakeWorker (slot, pid) {
  const sent = []
  const child = {
    connected: true,
    send (message, handle, callback) {
      const cb = typeof handle === 'function' ? handle : callback
      sent.push({ ...message['fastify-hot-reload'], handle: typeof handle === 'function' ? undefined : handle })
      if (cb) cb(null)
      return true
    },
    emit () {}
  }
  return { slot, pid, child, state: 'serving', covers: true, generation: 1, startedAt: 0, sent }
}

function fakeCohorts (workers) {
  return {
    servingWorkers: () => workers.filter((w) => w.state === 'serving').sort((a, b) => a.slot - b.slot),
    workers: new Map(workers.map((w) => [w.pid, w]))
  }
}

function heldPerSlot (slots) {
  const handles = slots.map((slot) => ({ slot }))
  return { perSlot: true, forSlot: (slot) => [{ address: { kind: 'tcp', address: '127.0.0.1', port: 3000 }, fd: 10 + slot, handle: handles[slot] }] }
}

test('an empty slot is covered by a serving worker until it serves again; then only that worker is told to stop', async (t) => {
  const [a, b, c] = [fakeWorker(0, 100), fakeWorker(1, 101), fakeWorker(2, 102)]
  const workers = [a, b, c]
  const cohorts = fakeCohorts(workers)
  const empty = new EmptySlots([0, 1, 2], heldPerSlot([0, 1, 2]), cohorts, log)
  empty.update()
  t.same([...a.sent, ...b.sent, ...c.sent], [], 'every slot serves: nothing to cover')
  // Slot 1's worker crashed.
  workers.splice(1, 1)
  cohorts.workers.delete(101)
  empty.update()
  t.same(a.sent.map((m) => [m.type, m.slot, m.listener]), [['cover', 1, '127.0.0.1:3000']], 'the lowest other slot covers it, with the slot\'s socket')
  t.equal(a.sent[0].handle.slot, 1, 'the handle of slot 1\'s socket')
  t.equal(empty.coveredBy(1), a)
  empty.update()
  t.equal(a.sent.length, 1, 'covered once')
  // The covering worker dies too: slot 2's worker covers both.
  workers.splice(0, 1)
  cohorts.workers.delete(100)
  empty.update()
  t.same(c.sent.map((m) => [m.type, m.slot]), [['cover', 0], ['cover', 1]], 'the one left covers both empty slots')
  // Slot 1 serves again.
  const b2 = fakeWorker(1, 103)
  workers.push(b2)
  cohorts.workers.set(103, b2)
  empty.update()
  t.same(c.sent.slice(2).map((m) => [m.type, m.slot]), [['uncover', 1]], 'slot 1\'s cover stops; slot 0 stays covered')
  t.equal(empty.coveredBy(1), undefined)
  t.equal(empty.coveredBy(0), c)
})

test('a shared socket, a worker that cannot cover, a slot never bound: nothing is covered', async (t) => {
  const a = fakeWorker(0, 100)
  const old = { ...fakeWorker(0, 200), covers: undefined }
  new EmptySlots([0, 1], { perSlot: false, forSlot: () => [] }, fakeCohorts([a]), log).update()
  new EmptySlots([0, 1], heldPerSlot([0, 1]), fakeCohorts([old]), log).update()
  new EmptySlots([0, 1], { perSlot: true, forSlot: () => [] }, fakeCohorts([a]), log).update()
  t.same([...a.sent, ...old.sent], [])
})

test('the balance asks every serving worker for reports once, and the most loaded to shed half the difference', async (t) => {
  const [a, b] = [fakeWorker(0, 100), fakeWorker(1, 101)]
  const balance = new KeepAliveBalance(fakeCohorts([a, b]), 2)
  balance.update()
  balance.update()
  t.same([...a.sent, ...b.sent].map((m) => m.type), ['balance', 'balance'], 'asked once each')
  balance.report(a, 13)
  t.equal(a.sent.length, 1, 'one report: nothing to compare yet')
  balance.report(b, 7)
  t.same(a.sent.at(-1), { type: 'shed', count: 3, handle: undefined }, 'the most loaded moves half the difference')
  t.equal(balance.target(a, [b]), b, 'a moved connection goes to the least loaded')
  t.equal(balance.connectionsOf(b.pid), 8, 'counted there at once')
  t.equal(balance.connectionsOf(a.pid), 12)
  balance.report(a, 10)
  balance.report(b, 10)
  t.equal(a.sent.filter((m) => m.type === 'shed').length, 1, 'balanced: no more orders')
})

test('after an order, the balance waits for the moves to settle before it asks again', async (t) => {
  const [a, b] = [fakeWorker(0, 100), fakeWorker(1, 101)]
  const balance = new KeepAliveBalance(fakeCohorts([a, b]), 2)
  balance.report(a, 12)
  balance.report(b, 8)
  t.equal(a.sent.filter((m) => m.type === 'shed').length, 1)
  // A report of the moment still counts the connections on their way.
  balance.report(a, 12)
  t.equal(a.sent.filter((m) => m.type === 'shed').length, 1, 'not asked again at once')
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(a.sent.filter((m) => m.type === 'shed').length, 2, 'asked again once settled, with no new report needed')
  balance.report(a, 10)
  balance.report(b, 10)
})

test('one worker: no balance', async (t) => {
  const a = fakeWorker(0, 100)
  const balance = new KeepAliveBalance(fakeCohorts([a]), 1)
  balance.update()
  balance.report(a, 50)
  t.same(a.sent, [])
  t.equal(balance.target(a, []), undefined, 'nowhere to move: the caller keeps its round robin')
})

'use strict'
// lib/supervisor/drain-acks.ts: a reload waits for the workers told to drain to say they no longer
// accept, not for one of an older release (which never says so), and never past its limit.
const { test } = require('tap')
const { DrainAcks } = require('../../dist/lib/supervisor/drain-acks')

const worker = (pid, acksDrain = true) => ({ pid, acksDrain })
const resolvedWithin = async (promise, ms) => {
  let timer
  const won = await Promise.race([promise.then(() => true), new Promise((resolve) => { timer = setTimeout(() => resolve(false), ms) })])
  clearTimeout(timer)
  return won
}

test('waits until every worker told to drain answered', async (t) => {
  const acks = new DrainAcks()
  const [a, b] = [worker(1), worker(2)]
  acks.expect(a)
  acks.expect(b)
  const settled = acks.settled([a, b])
  acks.heard(a)
  t.notOk(await resolvedWithin(settled, 50), 'one answer is not enough')
  acks.heard(b)
  t.ok(await resolvedWithin(settled, 50), 'both answered: settled')
})

test('a worker of an older release (no acksDrain) and one never told to drain are not waited for', async (t) => {
  const acks = new DrainAcks()
  const old = worker(1, false)
  acks.expect(old)
  t.ok(await resolvedWithin(acks.settled([old, worker(2)]), 50))
})

test('an answer that came before the wait began counts; so does an exit (heard)', async (t) => {
  const acks = new DrainAcks()
  const a = worker(1)
  acks.expect(a)
  acks.heard(a)
  t.ok(await resolvedWithin(acks.settled([a]), 50))
})

test('a worker that never answers holds the wait for a second at most', async (t) => {
  const acks = new DrainAcks()
  const stuck = worker(1)
  acks.expect(stuck)
  const started = Date.now()
  t.notOk(await resolvedWithin(acks.settled([stuck]), 500), 'still waiting after 500 ms')
  await acks.settled([stuck])
  const waited = Date.now() - started
  t.ok(waited >= 1000 && waited < 5000, `given up after the limit (${waited} ms)`)
})

'use strict'
// lib/probation.ts and lib/supervisor/restart-policy.ts: the clocks of a probation and of restarts.
const { test } = require('tap')
const { Probation } = require('../../dist/lib/probation')
const { RestartPolicy } = require('../../dist/lib/supervisor/restart-policy')

test('a probation is over when its time is up, once', async (t) => {
  let over = 0
  const probation = new Probation(20, () => over++)
  t.ok(probation.running)
  await new Promise((resolve) => setTimeout(resolve, 60))
  t.equal(over, 1)
  t.notOk(probation.running)
  probation.end()
  t.equal(over, 1, 'ending it again does nothing')
  t.notOk(probation.failed(), 'a failure after the probation is too late to go back')
})

test('a failure within the probation says go back, and the probation never reports over', async (t) => {
  let over = 0
  const probation = new Probation(20, () => over++)
  t.ok(probation.failed())
  await new Promise((resolve) => setTimeout(resolve, 60))
  t.equal(over, 0)
})

test('ended early: over at once', async (t) => {
  let over = 0
  const probation = new Probation(60_000, () => over++)
  probation.end()
  t.equal(over, 1)
  t.notOk(probation.failed())
})

test('restart delays double up to the cap; a long life starts afresh', async (t) => {
  const policy = new RestartPolicy({ restartDelay: 5, restartMaxDelay: 20 })
  const delays = []
  for (let i = 0; i < 4; i++) {
    let restarted
    const done = new Promise((resolve) => { restarted = resolve })
    const scheduled = policy.schedule(restarted)
    t.ok(policy.pending)
    t.equal(policy.schedule(() => t.fail('a second schedule while one is pending')), undefined)
    delays.push(scheduled.delay)
    await done
  }
  t.same(delays, [5, 10, 20, 20])
  t.equal(policy.restarts, 4)
  policy.crashedAfter(10)
  t.equal(policy.schedule(() => {}).delay, 20, 'a short life keeps backing off')
  policy.cancel()
  t.notOk(policy.pending)
  policy.crashedAfter(21)
  t.equal(policy.schedule(() => {}).delay, 5, 'a worker that served longer than the cap resets the backoff')
  policy.cancel()
})

'use strict'
// lib/supervisor/cohorts.ts: which number a restart of the whole service gets. A crash is not a
// reload: the generation that lost its last worker comes back under its own number (however it
// was emptied: a crash, or a restart into it that failed), unless another generation served since.
const { test } = require('tap')
const { Cohorts } = require('../../dist/lib/supervisor/cohorts')

const log = { info () {}, warn () {}, error () {} }

function serve (cohorts, generation, slots) {
  const cohort = { generation, workers: new Map() }
  const workers = slots.map((slot) => ({ generation, slot, pid: generation * 100 + slot, state: 'starting', startedAt: 0 }))
  for (const worker of workers) {
    cohorts.add(worker)
    cohorts.join(cohort, worker)
  }
  cohorts.commit(cohort)
  return { cohort, workers }
}

test('a restart of the whole service keeps the number of the generation that lost its workers', async (t) => {
  const cohorts = new Cohorts(5, log)
  t.equal(cohorts.restartGeneration, 1, 'nothing served yet: generation 1')
  const first = serve(cohorts, 1, [0, 1])
  for (const worker of first.workers) cohorts.vacate(cohorts.remove(worker))
  t.equal(cohorts.current, undefined, 'both workers gone: none serves')
  t.equal(cohorts.restartGeneration, 1, 'the restart is generation 1 again')

  // A restart into the serving generation that fails empties it too (vacate after the failed launch).
  const second = serve(cohorts, 2, [0, 1])
  t.equal(cohorts.generation, 2)
  cohorts.vacate(cohorts.remove(second.workers[0]))
  t.equal(cohorts.current, second.cohort, 'one worker left: it still serves')
  const restart = { generation: 2, slot: 0, pid: 999, state: 'starting', startedAt: 0 }
  cohorts.add(restart)
  cohorts.vacate(cohorts.remove(second.workers[1]))
  t.equal(cohorts.current, second.cohort, 'the last worker gone while a restart into it starts: it stays the serving one')
  cohorts.remove(restart)
  cohorts.vacate(second.cohort)
  t.equal(cohorts.current, undefined, 'that restart failed: none serves')
  t.equal(cohorts.restartGeneration, 2, 'the next restart is generation 2 again')

  const third = serve(cohorts, 3, [0])
  cohorts.vacate(cohorts.remove(third.workers[0]))
  t.equal(cohorts.restartGeneration, 3)

  // Generation 4 rolled back to 3 in its probation (servesAgain), then 3 crashed: still 3.
  const back = serve(cohorts, 3, [0])
  const fourth = serve(cohorts, 4, [0])
  cohorts.remove(fourth.workers[0])
  cohorts.servesAgain(back.cohort, fourth.cohort)
  t.equal(cohorts.current, back.cohort, 'generation 3 serves again')
  cohorts.vacate(cohorts.remove(back.workers[0]))
  t.equal(cohorts.restartGeneration, 3, 'its crash restarts generation 3, not 5')

  // A whole restart of generation 3 starting: still 3 for it, and a second slot's restart sees it start.
  const restarting = { generation: 3, slot: 0, pid: 333, state: 'starting', startedAt: 0 }
  cohorts.add(restarting)
  t.equal(cohorts.restartGeneration, 3, 'its own starting worker does not take the number')
  t.equal(cohorts.wholeStarting, true, 'a whole generation is starting')
  cohorts.remove(restarting)
  t.equal(cohorts.wholeStarting, false)

  // A worker that still carries the emptied number (one of its generation still draining): a new number.
  const fifth = serve(cohorts, 5, [0, 1])
  fifth.workers[1].state = 'draining'
  fifth.cohort.workers.delete(1)
  cohorts.vacate(cohorts.remove(fifth.workers[0]))
  t.equal(cohorts.restartGeneration, 6, 'generation 5 still has a live worker: 6')
})

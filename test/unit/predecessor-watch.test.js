'use strict'
// lib/predecessor-watch.ts: a standalone successor ends a predecessor that never exits; our parent
// pid is how it knows that predecessor still runs. Fake process and log; real timers, short bounds.
const { test } = require('tap')
const { PredecessorWatch } = require('../../dist/lib/predecessor-watch')
const { ParentLink } = require('../../dist/lib/parent-link')
const { chooseMode } = require('../../dist/lib/mode')
const { FakePort } = require('../helpers/fake-port')

const PREDECESSOR = 4100

function fakes (t) {
  const host = { parent: PREDECESSOR, kills: [], parentPid: () => host.parent, kill: (pid, signal) => { host.kills.push([pid, signal]); host.parent = 1 } }
  const lines = []
  const log = { info: (fields) => lines.push({ level: 'info', ...fields }), error: (fields) => lines.push({ level: 'error', ...fields }) }
  return { host, lines, log }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test('killed with SIGKILL once overdue, logged as an error naming it', async (t) => {
  const { host, lines, log } = fakes(t)
  void new PredecessorWatch(PREDECESSOR, 50, log, host)
  await sleep(20)
  t.same(host.kills, [], 'not before its bound')
  await sleep(80)
  t.same(host.kills, [[PREDECESSOR, 'SIGKILL']])
  t.match(lines, [{ level: 'error', hotReload: 'predecessor-killed', predecessorPid: PREDECESSOR, waitedMs: 50 }])
})

test('one that exited in time (we were re-parented) is left alone, even if its pid is taken again', async (t) => {
  const { host, lines, log } = fakes(t)
  void new PredecessorWatch(PREDECESSOR, 50, log, host)
  host.parent = 1
  await sleep(100)
  t.same(host.kills, [])
  t.same(lines, [])
})

test('gone() resolves at once when it has exited, when it exits, or once it was killed at its bound', async (t) => {
  const { host, lines, log } = fakes(t)
  host.parent = 1
  await new PredecessorWatch(PREDECESSOR, 10000, log, host).gone()
  t.same(lines, [], 'already gone: no wait, nothing logged')

  const exiting = fakes(t)
  const watch = new PredecessorWatch(PREDECESSOR, 10000, exiting.log, exiting.host)
  setTimeout(() => { exiting.host.parent = 1 }, 100)
  const startedAt = Date.now()
  await watch.gone()
  t.ok(Date.now() - startedAt < 2000, 'resolved soon after it exited')
  t.same(exiting.host.kills, [])
  t.match(exiting.lines, [{ level: 'info', hotReload: 'waiting-for-predecessor', predecessorPid: PREDECESSOR }], 'the wait is said once')

  const stuck = fakes(t)
  await new PredecessorWatch(PREDECESSOR, 300, stuck.log, stuck.host).gone()
  t.same(stuck.host.kills, [[PREDECESSOR, 'SIGKILL']], 'a stuck one is killed before we go')
  t.same(stuck.lines.map((l) => l.hotReload), ['waiting-for-predecessor', 'predecessor-killed'])
})

test('only a standalone successor whose predecessor said by when it exits watches it', async (t) => {
  const log = { info () {}, error () {} }
  const committed = (message) => {
    const port = new FakePort()
    const link = new ParentLink(port, { cutChannelOnBareCommit: true })
    port.deliver(message)
    return link
  }
  // An hour: this watch is of our real parent (the test runner), and must never come due.
  const said = committed({ type: 'commit', keepChannel: true, exitWithinMs: 3_600_000 })
  t.equal(said.parentExitsWithinMs, 3_600_000)
  const standalone = chooseMode({ generation: 2, parentPid: process.ppid, addresses: [] })
  const watch = standalone.watchPredecessor(said, log)
  t.ok(watch instanceof PredecessorWatch, 'watched')
  t.ok(watch.alive, 'our parent is the predecessor named at boot')
  const older = committed({ type: 'commit', keepChannel: true })
  t.equal(older.parentExitsWithinMs, undefined)
  t.equal(standalone.watchPredecessor(older, log), undefined, 'an older release said no bound: never killed')
  t.equal(chooseMode(null).watchPredecessor(said, log), undefined, 'a first generation has no predecessor')
  t.equal(chooseMode({ generation: 2, parentPid: process.ppid, supervised: true, addresses: [] }).watchPredecessor(said, log), undefined, 'the supervisor watches its workers itself')
})

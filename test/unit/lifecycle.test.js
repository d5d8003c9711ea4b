'use strict'
// lib/lifecycle.ts: the generation's state machine, driven directly.
const { EventEmitter } = require('node:events')
const { test } = require('tap')
const { Lifecycle } = require('../../dist/lib/lifecycle')

function lifecycle (confirmed = true) {
  const events = new EventEmitter()
  const seen = []
  const exits = []
  events.on('state', (next, previous) => seen.push(`${previous}->${next}`))
  return { life: new Lifecycle(confirmed, events, (code) => exits.push(code)), seen, exits, events }
}

test('a first generation: starting, serving, reloading, back to serving, draining, closed', async (t) => {
  const { life, seen } = lifecycle()
  t.equal(life.state, 'starting')
  t.ok(life.to('serving'))
  t.ok(life.to('reloading'))
  t.ok(life.to('serving'), 'a failed reload serves on')
  t.ok(life.to('draining'))
  t.ok(life.to('serving'), 'a drain whose successor died serves again')
  t.ok(life.to('draining'))
  t.ok(life.to('closed'))
  t.same(seen, ['starting->serving', 'serving->reloading', 'reloading->serving', 'serving->draining', 'draining->serving', 'serving->draining', 'draining->closed'])
})

test('moves that are not moves change nothing and emit nothing', async (t) => {
  const { life, seen } = lifecycle()
  t.notOk(life.to('starting'), 'no move to where we are')
  t.notOk(life.to('reloading'), 'no reload before serving')
  life.to('closed')
  for (const state of ['starting', 'serving', 'reloading', 'draining']) t.notOk(life.to(state), `closed is final (${state})`)
  t.same(seen, ['starting->closed'])
})

test('reload refusals say why', async (t) => {
  const successor = lifecycle(false).life
  successor.to('serving')
  t.equal(successor.reloadRefusal(), 'this generation is not yet confirmed by its predecessor')
  successor.confirm()
  t.equal(successor.reloadRefusal(), null)
  successor.to('reloading')
  t.equal(successor.reloadRefusal(), 'this generation is reloading')
  successor.to('serving')
  successor.stop()
  t.equal(successor.reloadRefusal(), 'this generation is serving', 'stopping refuses too')
  t.equal(lifecycle().life.reloadRefusal(), 'this generation is starting')
})

test('readiness: 503 while starting (unless the readiness check runs), draining or closed', async (t) => {
  const { life } = lifecycle(false)
  t.equal(life.notReadyReason(), 'starting')
  life.checking(true)
  t.equal(life.notReadyReason(), null, 'a successor checking its own readiness answers as if serving')
  life.checking(false)
  life.to('serving')
  t.equal(life.notReadyReason(), null)
  life.to('reloading')
  t.equal(life.notReadyReason(), null, 'still serving while a successor starts')
  life.to('draining')
  t.equal(life.notReadyReason(), 'draining')
  t.ok(life.leaving)
  life.to('closed')
  t.equal(life.notReadyReason(), 'closed')
})

test('events and the exit go through it', async (t) => {
  const { life, exits, events } = lifecycle()
  const got = []
  events.on('serving', (info) => got.push(info))
  life.emit('serving', { generation: 3, pid: 9 })
  life.end(1)
  t.same(got, [{ generation: 3, pid: 9 }])
  t.same(exits, [1])
})

test('before serving: starting, or a successor not yet committed; not once stopping', async (t) => {
  const first = lifecycle().life
  t.ok(first.beforeServing, 'a first generation starting')
  first.to('serving')
  t.notOk(first.beforeServing, 'serves at once when it takes over')
  const successor = lifecycle(false).life
  successor.to('serving')
  t.ok(successor.beforeServing, 'a successor that took over waits for its commit')
  successor.confirm()
  t.notOk(successor.beforeServing)
  const stopping = lifecycle().life
  stopping.stop()
  t.notOk(stopping.beforeServing, 'stopping is not waiting to serve')
  const draining = lifecycle(false).life
  draining.to('draining')
  t.notOk(draining.beforeServing, 'an aborted successor is on its way out')
})

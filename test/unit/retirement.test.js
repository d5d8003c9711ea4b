'use strict'
// lib/retirement.ts: the old generation's probation over its successor. Pure logic: an
// EventEmitter stands in for the child process (only its 'exit' event is used).
const { EventEmitter } = require('node:events')
const { test } = require('tap')
const { Retirement } = require('../../dist/lib/retirement')

function copy (address) {
  const handle = { closed: false, close () { this.closed = true } }
  return { address, handle }
}

const settled = (promise) => Promise.race([promise.then((value) => ({ value })), new Promise((resolve) => setTimeout(() => resolve('pending'), 30))])

test('probation 0, or no copy to go back to: over at once, copies closed, never lost', async (t) => {
  const child = new EventEmitter()
  const a = copy('127.0.0.1:1')
  const off = Retirement.watchChild(child, 10, 0, [a])
  t.same(await settled(off.over), { value: undefined })
  t.ok(a.handle.closed, 'the copy was closed')
  const none = Retirement.watchChild(child, 10, 5000, [])
  t.same(await settled(none.over), { value: undefined })
  child.emit('exit', 1, null)
  t.equal(await settled(off.lost), 'pending')
  t.equal(await settled(none.lost), 'pending')
})

test('the successor exits within the probation: lost says how, and the copies come back by address', async (t) => {
  const child = new EventEmitter()
  const a = copy('127.0.0.1:1')
  const b = copy('unix:/tmp/x.sock')
  const retirement = Retirement.watchChild(child, 42, 60000, [a, b])
  t.equal(await settled(retirement.over), 'pending', 'the probation runs')
  child.emit('exit', 7, null)
  const lost = await settled(retirement.lost)
  t.match(lost.value, /the successor \(pid 42\) exited with code 7 \d+ ms after it took over/)
  const copies = retirement.takeCopies()
  t.same([...copies.keys()], ['127.0.0.1:1', 'unix:/tmp/x.sock'])
  t.equal(copies.get('127.0.0.1:1'), a.handle)
  t.notOk(a.handle.closed, 'handed back open, to listen on')
  t.same(await settled(retirement.over), { value: undefined }, 'and the probation is over')
})

test('a signal exit is named', async (t) => {
  const child = new EventEmitter()
  const retirement = Retirement.watchChild(child, 42, 60000, [copy('127.0.0.1:1')])
  child.emit('exit', null, 'SIGKILL')
  t.match((await settled(retirement.lost)).value, /exited with signal SIGKILL/)
  retirement.release() // as the caller does; it also stops the probation timer
})

test('after the probation an exit is not a loss; release() closes the copies', async (t) => {
  const child = new EventEmitter()
  const a = copy('127.0.0.1:1')
  const retirement = Retirement.watchChild(child, 42, 20, [a])
  t.same(await settled(retirement.over), { value: undefined }, 'over after probation ms')
  child.emit('exit', 1, null)
  t.equal(await settled(retirement.lost), 'pending')
  retirement.release()
  t.ok(a.handle.closed)
})

test('endProbation() ends it early (a later generation drains now, or we shut down); copies added after are closed', async (t) => {
  const retirement = new Retirement(undefined)
  const a = copy('127.0.0.1:1')
  retirement.addCopy(a)
  retirement.endProbation()
  t.same(await settled(retirement.over), { value: undefined })
  retirement.fail('too late')
  t.equal(await settled(retirement.lost), 'pending', 'a failure after the end does not count')
  const late = copy('127.0.0.1:2')
  retirement.addCopy(late)
  t.ok(late.handle.closed, 'a copy that arrives after the end is closed at once')
  retirement.release()
  t.ok(a.handle.closed)
})

test('supervised: the supervisor says resume (fail) with the copies it sent', async (t) => {
  const retirement = new Retirement(undefined)
  const a = copy('127.0.0.1:1')
  retirement.addCopy(a)
  retirement.successorPid = 99
  retirement.fail('generation 3 (pid 99) exited')
  t.same(await settled(retirement.lost), { value: 'generation 3 (pid 99) exited' })
  t.equal(retirement.takeCopies().get('127.0.0.1:1'), a.handle)
})

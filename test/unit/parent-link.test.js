'use strict'
// lib/parent-link.ts: a generation's view of its parent, over a fake process port.
const { test } = require('tap')
const { ParentLink } = require('../../dist/lib/parent-link')
const { FakePort } = require('../helpers/fake-port')

test('ready, then the verdict: commit resolves, and a bare commit cuts the channel only when asked to', async (t) => {
  const port = new FakePort()
  const link = new ParentLink(port, { cutChannelOnBareCommit: true })
  const verdict = link.ready(port.pid, 2)
  t.same(port.sentOfType('ready').map(({ pid, generation }) => ({ pid, generation })), [{ pid: port.pid, generation: 2 }])
  port.deliver({ type: 'commit' })
  t.equal(await verdict, 'commit')
  t.equal(port.disconnects, 1, 'an old release commits without keepChannel: the channel goes')
  const kept = new FakePort()
  const keeping = new ParentLink(kept, { cutChannelOnBareCommit: true })
  kept.deliver({ type: 'commit', keepChannel: true })
  t.equal(await keeping.ready(kept.pid, 2), 'commit', 'a verdict that came first is kept')
  t.equal(kept.disconnects, 0)
  const supervised = new FakePort()
  new ParentLink(supervised, { cutChannelOnBareCommit: false }).ready(1, 1)
  supervised.deliver({ type: 'commit' })
  t.equal(supervised.disconnects, 0, 'a worker never cuts its supervisor')
})

test('ready says when the app listened when known, and how many instances when more than one', async (t) => {
  const port = new FakePort()
  void new ParentLink(port, { cutChannelOnBareCommit: false }).ready(port.pid, 3, 2, 12345.5)
  t.match(port.sentOfType('ready')[0], { generation: 3, instances: 2, listenedAt: 12345.5 })
  const plain = new FakePort()
  void new ParentLink(plain, { cutChannelOnBareCommit: false }).ready(plain.pid, 3)
  t.notOk('listenedAt' in plain.sentOfType('ready')[0] || 'instances' in plain.sentOfType('ready')[0], 'neither field when not known or one instance')
})

test('listening is said once, however many instances call listen()', async (t) => {
  const port = new FakePort()
  const link = new ParentLink(port, { cutChannelOnBareCommit: false })
  link.listening()
  link.listening()
  t.equal(port.sentOfType('listening').length, 1)
})

test('an abort before anyone subscribed ends the process; after, it is the generation\'s', async (t) => {
  const port = new FakePort()
  const link = new ParentLink(port, { cutChannelOnBareCommit: true })
  port.deliver({ type: 'abort' })
  t.same(port.exits, [1])
  const other = new FakePort()
  const subscribed = new ParentLink(other, { cutChannelOnBareCommit: true })
  let aborted = 0
  subscribed.subscribe({ abort: () => aborted++ })
  const verdict = subscribed.ready(1, 2)
  other.deliver({ type: 'abort' })
  t.equal(await verdict, 'abort')
  t.equal(aborted, 1)
  t.same(other.exits, [])
  t.ok(link)
})

test('orders reach their handlers; handles that come before a subscriber are closed', async (t) => {
  const port = new FakePort()
  const link = new ParentLink(port, { cutChannelOnBareCommit: false })
  let closed = 0
  port.deliver({ type: 'listener', address: '127.0.0.1:1' }, { close: () => closed++ })
  port.deliver({ type: 'connection', listener: '127.0.0.1:1' }, { close: () => closed++ })
  t.equal(closed, 2)
  const got = []
  link.subscribe({
    drain: (probation, rampMs) => got.push(['drain', probation, rampMs]),
    cut: () => got.push(['cut']),
    retire: () => got.push(['retire']),
    resume: (pid, reason) => got.push(['resume', pid, reason]),
    listener: (address) => got.push(['listener', address]),
    connection: (listener) => got.push(['connection', listener])
  })
  port.deliver({ type: 'drain', probation: true })
  port.deliver({ type: 'drain', probation: false, rampMs: 400 })
  port.deliver({ type: 'cut' })
  port.deliver({ type: 'listener', address: '127.0.0.1:1' }, { close () {} })
  port.deliver({ type: 'listener', address: '127.0.0.1:1' }) // no handle: ignored
  port.deliver({ type: 'resume', successorPid: 9, reason: 'it died' })
  port.deliver({ type: 'retire' })
  port.deliver({ type: 'connection', listener: '127.0.0.1:1' }, { close () {} })
  port.emit('message', { type: 'drain' }) // not ours: the app's own IPC
  t.same(got, [['drain', true, undefined], ['drain', false, 400], ['cut'], ['listener', '127.0.0.1:1'], ['resume', 9, 'it died'], ['retire'], ['connection', '127.0.0.1:1']])
})

test('a reload asked of the supervisor resolves with its answer, or fails when it is gone', async (t) => {
  const port = new FakePort()
  const link = new ParentLink(port, { cutChannelOnBareCommit: false })
  const first = link.requestReload()
  const [request] = port.sentOfType('reload-request')
  port.deliver({ type: 'reload-result', id: request.id, result: { ok: false, generation: 1, pid: 5, durationMs: 3, error: { code: 'HOT_RELOAD_READY_TIMEOUT', message: 'late' } } })
  const result = await first
  t.equal(result.ok, false)
  t.equal(result.error.code, 'HOT_RELOAD_READY_TIMEOUT')
  const second = link.requestReload()
  port.disconnect()
  const gone = await second
  t.equal(gone.error.code, 'HOT_RELOAD_NOT_SERVING')
  await t.rejects(link.sendConnection('127.0.0.1:1', {}), /no channel/)
})

test('a connection handed up resolves once the supervisor says it passed it on (passAcks), rejects when it could not', async (t) => {
  const sentAndPassed = async (port, link) => {
    let settled = false
    const sending = link.sendConnection('127.0.0.1:1', { fd: 9 }).then(() => { settled = true }, (err) => { settled = err })
    await new Promise((resolve) => setImmediate(resolve))
    return { sending, settled: () => settled }
  }
  // From a supervisor that does not say passAcks (an older one): sent is enough.
  const old = new FakePort()
  const oldLink = new ParentLink(old, { cutChannelOnBareCommit: false })
  old.deliver({ type: 'commit', keepChannel: true })
  const plain = await sentAndPassed(old, oldLink)
  await plain.sending
  t.equal(plain.settled(), true, 'without passAcks: resolved once sent')
  t.notOk('id' in old.sentOfType('connection')[0], 'and sent without an id')

  const port = new FakePort()
  const link = new ParentLink(port, { cutChannelOnBareCommit: false })
  port.deliver({ type: 'commit', keepChannel: true, passAcks: true })
  const first = await sentAndPassed(port, link)
  const [{ id }] = port.sentOfType('connection')
  t.type(id, 'number', 'with passAcks: sent with an id')
  t.equal(first.settled(), false, 'not settled once merely sent: the supervisor has not passed it on yet')
  port.deliver({ type: 'connection-passed', id, ok: true })
  await first.sending
  t.equal(first.settled(), true, 'resolved by connection-passed')

  const second = await sentAndPassed(port, link)
  port.deliver({ type: 'connection-passed', id: port.sentOfType('connection')[1].id, ok: false })
  await second.sending
  t.type(second.settled(), Error, 'rejected when the supervisor could not pass it on (the connection stays here)')

  const third = await sentAndPassed(port, link)
  port.disconnect()
  await third.sending
  t.type(third.settled(), Error, 'rejected when the supervisor is gone')
})

test('release (the app closed itself): the link stops listening, so the channel keeps nothing alive; a supervisor\'s channel is cut too', async (t) => {
  const standalone = new FakePort()
  new ParentLink(standalone, { cutChannelOnBareCommit: true }).release()
  t.same([standalone.listenerCount('message'), standalone.listenerCount('disconnect'), standalone.disconnects], [0, 0, 0],
    'standalone (the channel may be PM2\'s or nodemon\'s): our listeners go, the channel stays')
  const supervised = new FakePort()
  new ParentLink(supervised, { cutChannelOnBareCommit: false, supervisorChannel: true }).release()
  t.same([supervised.listenerCount('message'), supervised.disconnects], [0, 1], 'supervised: cut')
})

test('endHandoffs: resolves on the predecessor\'s answer, on the channel closing, or after the time limit (an older predecessor never answers)', async (t) => {
  const answered = new FakePort()
  let done = false
  const ending = new ParentLink(answered, { cutChannelOnBareCommit: true }).endHandoffs(5000).then(() => { done = true })
  t.equal(answered.sentOfType('handoffs-end').length, 1, 'it asks')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.notOk(done, 'and waits')
  answered.deliver({ type: 'handoffs-ended' })
  await ending
  t.pass('the answer ends the wait')
  const cut = new FakePort()
  const cutting = new ParentLink(cut, { cutChannelOnBareCommit: true }).endHandoffs(5000)
  cut.disconnect()
  await cutting
  t.pass('so does the channel closing')
  const silent = new FakePort()
  const link = new ParentLink(silent, { cutChannelOnBareCommit: true })
  const listening = silent.listenerCount('disconnect')
  const started = Date.now()
  await link.endHandoffs(100)
  t.ok(Date.now() - started >= 90, 'and the time limit')
  t.equal(silent.listenerCount('disconnect'), listening, 'nothing of it is left listening')
  const gone = new FakePort({ connected: false })
  await new ParentLink(gone, { cutChannelOnBareCommit: true }).endHandoffs(5000)
  t.same(gone.sentOfType('handoffs-end'), [], 'no channel: nothing to ask, nothing to wait for')
  const supervisor = new FakePort()
  await new ParentLink(supervisor, { cutChannelOnBareCommit: false, supervisorChannel: true }).endHandoffs(5000)
  t.same(supervisor.sentOfType('handoffs-end'), [], 'a supervisor hands connections to serving workers only: nothing to ask')
})

test('SuccessorChannel.endHandoffs: the standalone outlet reports closed from then on, and the successor hears so', async (t) => {
  const { EventEmitter } = require('node:events')
  const { SuccessorChannel } = require('../../dist/lib/successor-channel')
  const { chooseMode } = require('../../dist/lib/mode')
  const child = new EventEmitter()
  child.connected = true
  const sent = []
  child.send = (message, callback) => { sent.push(message['fastify-hot-reload']); if (typeof callback === 'function') setImmediate(() => callback(null)) }
  const channel = new SuccessorChannel(child)
  const outlet = chooseMode(null).outlet(channel)
  t.equal(outlet.open, true, 'open while the successor takes connections')
  channel.endHandoffs()
  t.equal(outlet.open, false, 'closed once it said its drain is over')
  t.same(sent.map((m) => m.type), ['handoffs-ended'], 'and it is answered')
})

test('an uncaught exception before ready tells the parent what it was; after ready, nothing', async (t) => {
  const port = new FakePort()
  const link = new ParentLink(port, { cutChannelOnBareCommit: false })
  port.emit('uncaughtExceptionMonitor', new TypeError('x is not a function'), 'uncaughtException')
  t.same(port.sentOfType('crashing').map((m) => m.cause), ['TypeError: x is not a function'])
  void link.ready(port.pid, 2)
  port.emit('uncaughtExceptionMonitor', new Error('later'), 'uncaughtException')
  t.equal(port.sentOfType('crashing').length, 1, 'a crash once it serves is not a failed boot')
})

'use strict'
// lib/reload-result.ts: one result shape, one wire form, one reload at a time.
const { test } = require('tap')
const { ReloadGate, failed, fromWire, notServing, succeeded, toWire } = require('../../dist/lib/reload-result')
const { hotReloadError } = require('../../dist/lib/errors')

test('success and failure results', async (t) => {
  const ok = succeeded(3, 99, performance.now() - 5)
  t.match(ok, { ok: true, generation: 3, pid: 99, successorPid: 99 })
  t.ok(ok.durationMs >= 4)
  t.equal(ok.bootMs, undefined, 'no bootMs when the successor did not say')
  t.match(succeeded(3, 99, performance.now(), 42), { bootMs: 42 })
  t.same(fromWire(toWire(succeeded(3, 99, performance.now(), 42))).bootMs, 42, 'bootMs crosses the wire')
  const error = hotReloadError('HOT_RELOAD_READY_TIMEOUT', 'late')
  const bad = failed({ generation: 2, pid: 7 }, performance.now(), 8, error)
  t.match(bad, { ok: false, generation: 2, pid: 7, successorPid: 8 })
  t.equal(bad.error, error)
  const never = notServing(7, 'reload ignored: no', 2)
  t.match(never, { ok: false, generation: 2, pid: 7, durationMs: 0 })
  t.equal(never.error.code, 'HOT_RELOAD_NOT_SERVING')
})

test('the wire form carries the error as plain fields and comes back as a coded error', async (t) => {
  const error = hotReloadError('HOT_RELOAD_SPAWN_FAILED', 'no binary')
  const wire = toWire(failed({ generation: 1, pid: 2 }, undefined, undefined, error))
  t.same(JSON.parse(JSON.stringify(wire)), { ok: false, generation: 1, pid: 2, durationMs: 0, error: { code: 'HOT_RELOAD_SPAWN_FAILED', message: 'no binary' } })
  const back = fromWire(wire)
  t.ok(back.error instanceof Error)
  t.equal(back.error.code, 'HOT_RELOAD_SPAWN_FAILED')
  t.equal(back.error.message, 'no binary')
  t.same(fromWire(toWire(succeeded(2, 5, performance.now()))).error, undefined)
})

test('the gate runs one reload at a time; a request meanwhile joins it', async (t) => {
  const gate = new ReloadGate()
  let runs = 0
  let finish
  const run = () => { runs++; return new Promise((resolve) => { finish = resolve }) }
  const first = gate.enter(run)
  const second = gate.enter(run)
  t.notOk(first.joined)
  t.ok(second.joined)
  t.ok(gate.busy)
  t.equal(runs, 1)
  finish({ ok: true })
  t.same(await second.result, { ok: true })
  t.notOk(gate.busy, 'free again once it is over')
  gate.enter(run)
  t.equal(runs, 2)
  finish({ ok: true })
})

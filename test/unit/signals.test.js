'use strict'
// lib/signals.ts installShutdown: the first SIGTERM drains; what a second one does. Each case runs
// in a process of its own (test/fixtures/stop-signals.js), which signals itself.
const { execFile } = require('node:child_process')
const path = require('node:path')
const { test } = require('tap')
const { SAME_STOP_MS } = require('../../dist/lib/signals')

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'stop-signals.js')

function run (ignoreRepeats, signals, gapMs = 30) {
  return new Promise((resolve) => {
    execFile(process.execPath, [FIXTURE, String(ignoreRepeats), String(signals), String(gapMs)], { timeout: 10000 }, (err, stdout) => {
      const line = stdout.trim().split('\n').pop()
      resolve({ code: err ? err.code : 0, signal: err?.signal ?? null, report: line ? JSON.parse(line) : undefined })
    })
  })
}

test('one SIGTERM: the shutdown runs and the process exits 0; SIGTERM never goes without a listener meanwhile', async (t) => {
  for (const ignoreRepeats of [false, true]) {
    const { code, signal, report } = await run(ignoreRepeats, 1)
    t.same({ code, signal }, { code: 0, signal: null }, `exit 0 (ignoreRepeats ${ignoreRepeats})`)
    t.equal(report.unhandled, false, 'SIGTERM had a listener at every moment (without one, a second signal then kills the process)')
  }
})

test('a second SIGTERM while stopping, standalone: within SAME_STOP_MS the same stop delivered twice (npm, coreutils timeout), ignored; later, exit 1 at once', async (t) => {
  const twice = await run(false, 2, 30)
  t.same({ code: twice.code, signal: twice.signal }, { code: 0, signal: null }, '30 ms apart: exit 0 after the drain')
  t.equal(twice.report.said.filter((what) => what === 'signal-ignored').length, 1, 'the repeat is logged as ignored')
  t.equal(twice.report.unhandled, false, 'SIGTERM had a listener at every moment')
  const forced = await run(false, 2, SAME_STOP_MS + 300)
  t.same({ code: forced.code, signal: forced.signal }, { code: 1, signal: null }, `${SAME_STOP_MS + 300} ms apart: exit 1 at the second signal, not killed by it`)
})

test('a supervised worker ignores every repeat, however late, and exits 0 once drained', async (t) => {
  const supervised = await run(true, 3, SAME_STOP_MS + 100)
  t.same({ code: supervised.code, signal: supervised.signal }, { code: 0, signal: null }, 'exit 0 after its drain')
  t.equal(supervised.report.unhandled, false, 'SIGTERM had a listener at every moment')
  t.equal(supervised.report.said.filter((what) => what === 'signal-ignored').length, 2, 'each repeat is logged as ignored')
})

'use strict'
// lib/supervisor/stop-workers.ts: a supervisor's stop sends SIGTERM to every worker, waits for each
// to exit until the grace is over, then kills the rest. Real child processes, real signals.
const { spawn } = require('node:child_process')
const { EventEmitter, once } = require('node:events')
const { test } = require('tap')
const { stopWorkers } = require('../../dist/lib/supervisor/stop-workers')

const silentLog = { info () {}, warn () {}, error () {} }

/**
 * A worker that takes `stopMs` to stop after SIGTERM (or ignores it: `stopMs` Infinity), tracked
 * as the supervisor tracks its workers: removed from the map, then 'worker-exit'.
 */
async function startWorker (t, workers, events, stopMs) {
  const onTerm = stopMs === Infinity ? '() => {}' : `() => setTimeout(() => process.exit(0), ${stopMs})`
  const child = spawn(process.execPath, ['-e', `process.on('SIGTERM', ${onTerm}); process.send('ready'); setTimeout(() => {}, 30000)`], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  t.teardown(() => { try { process.kill(child.pid, 'SIGKILL') } catch {} })
  await once(child, 'message')
  workers.set(child.pid, { pid: child.pid, generation: 1 })
  child.once('exit', () => {
    workers.delete(child.pid)
    events.emit('worker-exit', child.pid)
  })
  return child
}

test('a worker that takes longer than a few polls to stop leaves no listener behind (no MaxListenersExceededWarning)', async (t) => {
  const workers = new Map()
  const events = new EventEmitter()
  const warnings = []
  const onWarning = (warning) => warnings.push(warning.name)
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  await startWorker(t, workers, events, 1500)

  const stopping = stopWorkers(workers, 10_000, events, silentLog)
  await new Promise((resolve) => setTimeout(resolve, 1200))
  t.ok(events.listenerCount('worker-exit') <= 1, `one wait at a time listens (${events.listenerCount('worker-exit')} listening)`)
  const killed = await stopping

  t.equal(killed, 0, 'the worker stopped by itself, within the grace')
  t.equal(workers.size, 0)
  t.equal(events.listenerCount('worker-exit'), 0, 'no wait still listens')
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(warnings.includes('MaxListenersExceededWarning'), 'no listener-leak warning')
})

test('a worker still running after the grace is killed', async (t) => {
  const workers = new Map()
  const events = new EventEmitter()
  const child = await startWorker(t, workers, events, Infinity)
  const exited = once(child, 'exit')

  const killed = await stopWorkers(workers, 500, events, silentLog)

  t.equal(killed, 1)
  const [, signal] = await exited
  t.equal(signal, 'SIGKILL')
  t.equal(events.listenerCount('worker-exit'), 0)
})

'use strict'
// How the supervisor stops: SIGTERM and SIGINT (once, twice, to it and its worker at once), a signal
// it does not reload on, --drain-timeout, a first generation that cannot start, an app that closes
// itself. Real processes, real signals; each test has its own supervisor.
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { startSupervised, servingTarget, tempDir, writeRelease, waitUntilGone, isAlive, sleep, childPids } = require('./helpers/processes')
const { requestJson: get } = require('./helpers/http')
const { SAME_STOP_MS } = require('../dist/lib/signals')

// Two tests at a time: each waits on a drain or a restart, so their waits overlap.
tap.jobs = 2

const PLUGIN = { idleGrace: 300 }

/**
 * One worker serving release 1 (`release`: more of its options), drainTimeout 10 s, and a request
 * of `ms` in flight on it for 300 ms; `slow` resolves with its answer, or the error that ended it.
 */
async function slowRequestInFlight (t, ms, release = {}) {
  const { dir, service } = startSupervised(t)
  writeRelease(dir, { version: 1, ...release, plugin: { ...PLUGIN, drainTimeout: 10000 } })
  const target = await servingTarget(service)
  const worker = await service.generationServing(1)
  const slow = get(target, `/slow?ms=${ms}`).catch((err) => err)
  await sleep(300)
  return { service, target, worker, slow }
}

test('SIGTERM: while the workers drain, a new connection is refused at once (nothing will accept it), and the request in flight finishes', async (t) => {
  const { service, target, slow } = await slowRequestInFlight(t, 2500)
  process.kill(service.pid, 'SIGTERM')
  await service.waitForLine((l) => l.hotReload === 'shutting-down', 5000, 'the worker to start its drain')
  await sleep(200)
  // Held open by the supervisor, the socket would queue it unanswered until the end of the drain, then reset it.
  const refused = await new Promise((resolve) => {
    const socket = net.connect(target)
    const timer = setTimeout(() => { socket.destroy(); resolve('no answer within 1 s') }, 1000)
    socket.on('connect', () => { clearTimeout(timer); socket.destroy(); resolve('accepted into the queue') })
    socket.on('error', (err) => { clearTimeout(timer); resolve(err.code) })
  })
  t.equal(refused, 'ECONNREFUSED', 'a new connection is refused at once')
  const answer = await slow
  t.equal(answer.status, 200, 'the request in flight finished')
  t.same(await service.exit, { code: 0, signal: null }, 'exit 0')
})

// systemd's default KillMode (control-group) sends SIGTERM to every process of the service at once,
// and so do pkill and killall. The worker gets it twice (once from its supervisor): the second must
// not cut its drain, also in an app with its own close-with-grace (fastify-cli's server.js).
for (const [first, ownSigterm] of [['worker', undefined], ['worker', 'close-with-grace'], ['supervisor', undefined]]) {
  test(`SIGTERM to the supervisor and its worker at once (${first} first${ownSigterm ? `, an app with its own ${ownSigterm}` : ''}): one graceful stop, the request in flight finishes, exit 0, no worker left`, async (t) => {
    const { service, slow } = await slowRequestInFlight(t, 1500, { ownSigterm })
    const worker = childPids(service.pid)
    t.equal(worker.length, 1, 'one worker')
    const order = first === 'worker' ? [worker[0], service.pid] : [service.pid, worker[0]]
    for (const pid of order) process.kill(pid, 'SIGTERM')
    t.equal((await slow).status, 200, 'the request in flight finished')
    t.same(await service.exit, { code: 0, signal: null }, 'exit 0')
    // The worker's word that it stops can come before the supervisor's own signal: no replacement for it then.
    const started = service.lines.filter((l) => l.supervisor === 'generation-starting').map((l) => l.workerPid)
    t.same(started, [worker[0]], 'no worker was started for the slot of the one that stopped with the service')
    t.notOk(isAlive(worker[0]), 'the worker is gone')
    t.notOk(service.find((l) => l.supervisor === 'worker-killed'), 'none had to be killed')
  })
}

test('SIGINT to the supervisor twice at once (npm passing on the Ctrl-C the terminal sent to its whole group, coreutils timeout): one graceful stop, not a forced one', async (t) => {
  const { service, slow } = await slowRequestInFlight(t, 1500)
  process.kill(service.pid, 'SIGINT')
  // Not in the same instant: the kernel would merge two pending signals into one.
  await sleep(50)
  process.kill(service.pid, 'SIGINT')
  t.equal((await slow).status, 200, 'the request in flight finished')
  t.same(await service.exit, { code: 0, signal: null }, 'exit 0')
  t.notOk(service.find((l) => l.supervisor === 'stop-forced'), 'not forced')
})

test('a second SIGTERM while the workers drain forces the stop at once: exit 1, the request in flight cut', async (t) => {
  const { service, worker, slow } = await slowRequestInFlight(t, 8000)
  process.kill(service.pid, 'SIGTERM')
  await service.waitForLine((l) => l.hotReload === 'shutting-down', 5000, 'the worker to start its drain')
  // A person's second signal, not the same one delivered twice at once (below).
  await sleep(SAME_STOP_MS + 100)
  const forcedAt = Date.now()
  process.kill(service.pid, 'SIGTERM')
  t.same(await service.exit, { code: 1, signal: null }, 'exit 1')
  t.ok(Date.now() - forcedAt < 5000, 'without waiting for the 8 s request')
  t.ok((await slow) instanceof Error, 'the request in flight was cut')
  t.notOk(isAlive(worker), 'the worker is gone')
  t.ok(service.find((l) => l.supervisor === 'stop-forced'), 'the supervisor said so')
})

test('SIGUSR2, SIGHUP or SIGPWR to a supervisor on which it does not reload (--reload-signal none): a graceful stop, with no socket or pid file left, not the signal\'s abrupt end', async (t) => {
  // SIGPWR too: LXC asks PID 1 to shut down with it.
  for (const signal of ['SIGUSR2', 'SIGHUP', 'SIGPWR']) {
    const dir = tempDir(t)
    const pidFile = path.join(dir, 'app.pid')
    const { control, service } = startSupervised(t, { dir, extra: ['--reload-signal', 'none', '--pid-file', pidFile] })
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    await servingTarget(service)
    const worker = await service.generationServing(1)
    process.kill(service.pid, signal)
    const { code, signal: endedBy } = await service.closed
    t.same({ code, endedBy }, { code: 0, endedBy: null }, `${signal}: exit 0, not killed by the signal`)
    t.match(service.find((l) => l.supervisor === 'signal-stops'), { signal, reloadSignals: [] }, `${signal}: it says why it stops`)
    t.ok(service.find((l) => l.supervisor === 'stopping'), 'its stop is the graceful one')
    t.notOk(isAlive(worker), 'the worker is gone')
    t.notOk(fs.existsSync(control), 'no control socket left')
    t.notOk(fs.existsSync(pidFile), 'no pid file left')
  }
})

test('a first generation that cannot start: the supervisor stops with exit code 1, without scheduling a restart it will not run', async (t) => {
  const { dir, service } = startSupervised(t)
  writeRelease(dir, { version: 1, throwAtBoot: true })
  // closed: its output read to the end, not only its exit.
  t.equal((await service.closed).code, 1, 'exit 1')
  t.ok(service.find((l) => l.supervisor === 'first-generation-failed'), 'it says the first generation did not start')
  t.notOk(service.find((l) => l.supervisor === 'restart-scheduled'), 'no restart scheduled')
  t.equal(service.filter((l) => l.supervisor === 'generation-starting').length, 1, 'one worker started')
})

test('a first generation whose boot fails in a plugin of the app (logged, then process.exit(1)): the supervisor\'s log names what it failed with', async (t) => {
  const { dir, service } = startSupervised(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, pluginFailsAtBoot: true })
  t.equal((await service.closed).code, 1, 'exit 1')
  t.match(service.find((l) => l.supervisor === 'generation-failed'), { error: { code: 'HOT_RELOAD_SUCCESSOR_EXITED', message: /: its app's boot failed: Error: release 1 cannot reach its database$/ } })
})

test('--drain-timeout bounds the workers\' drains, whatever their drainTimeout: a stop cuts what is left then, and no worker has to be killed', async (t) => {
  // The plugin's drainTimeout is its default (30 s): without the bound the worker would wait for the request, and be killed at 2 + 5 s.
  const { dir, service } = startSupervised(t, { extra: ['--drain-timeout', '2000'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  await service.generationServing(1)
  t.match(service.find((l) => l.hotReload === 'drain-limited'), { drainTimeout: 2000, closeSpread: 1000, asked: 30000 }, 'the worker drains within the supervisor\'s bound')
  const slow = get(target, '/slow?ms=20000').then(() => 'answered', (err) => err.code)
  await sleep(300)
  const stoppedAt = Date.now()
  process.kill(service.pid, 'SIGTERM')
  await service.closed // its output read to the end
  const took = Date.now() - stoppedAt
  t.ok(took < 6000, `stopped within the bound, not at the kill (${took} ms)`)
  t.equal(await slow, 'ECONNRESET', 'the request still running at the bound was cut')
  t.match(service.find((l) => l.hotReloadEvent === 'drained'), { cutConnections: 1 }, 'the worker cut it itself')
  t.notOk(service.find((l) => l.supervisor === 'worker-killed'), 'no worker killed')
})

test('an app that closes itself under the supervisor: its worker ends as the process would without the plugin, and the supervisor starts another', async (t) => {
  const { dir, service } = startSupervised(t, { extra: ['--restart-delay', '200'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN, closeAfterMs: 1000 })
  const target = await servingTarget(service)
  const first = await service.generationServing(1)
  // The next worker the supervisor starts is the same release without the close.
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  await waitUntilGone(first, 10000)
  t.pass('the worker whose app closed itself exited')
  const answer = await get(target)
  t.equal(answer.status, 200, 'the service answers again')
  t.not(answer.body.pid, first, 'from a new worker')
})

'use strict'
// Several workers per generation under the supervisor (--workers N): every worker of the serving
// generation accepts on the same sockets; a reload starts all N new ones and drains the old ones
// once every new one is ready; one failing new worker fails the whole reload; a worker that crashes
// after the probation is restarted alone in its slot; within it, the whole old generation serves again.
const tap = require('tap')
const { test } = tap
const path = require('node:path')
const { Service, BIN, FIXTURE_APP, cli, startSupervised, servingTarget, tempDir, writeRelease, waitFor, waitUntilGone, isAlive, sleep, childrenOf, notifyReceiver } = require('./helpers/processes')
const { freePort } = require('../tools/free-port')
const { startLoad } = require('./helpers/load')
const { webSocketClients } = require('./helpers/long-lived')
const { reusePortSupported } = require('../dist/lib/supervisor/held-sockets')
const { status, statusOnceUp, servingWorkers, STATUS_POLL_MS } = require('./helpers/supervisor-status')

// Two tests at a time: most wait on boots, readyTimeout and probations. Each test has its own
// supervisor, port and load. The two that time requests (the gap a killed worker leaves, the
// keep-alive balance) run alone. (Named supervisor-workers, not workers: tap runs the files in name
// order, two at a time, and as the last file this one ran alone for its last ~100 s while tap's
// other job had nothing left.)
tap.jobs = 2

// Node 22.12+: a socket per slot (SO_REUSEPORT), spread evenly; before, one shared socket.
const perSlot = reusePortSupported(process.versions.node)

const PLUGIN = { idleGrace: 300 }

for (const workers of [2, 3]) {
  test(`--workers ${workers}: every worker serves; 3 chained reloads under keep-alive and per-request load, 0 failed`, async (t) => {
    const { dir, control, service } = startSupervised(t, { extra: ['--workers', String(workers), '--probation', '500'] })
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const target = await servingTarget(service)
    const first = await servingWorkers(service, control, 1, workers)
    t.same(first.map((w) => w.slot).sort(), [...Array(workers).keys()], 'one worker in each slot')
    const keepAlive = startLoad(t, target, { connections: 10 * workers, keepAlive: true })
    const perRequest = startLoad(t, target, { connections: 10, keepAlive: false })
    await sleep(500)
    const generations = [first]
    for (let version = 2; version <= 4; version++) {
      writeRelease(dir, { version, plugin: PLUGIN })
      const reload = await cli(['reload', '--control', control, '--json'])
      t.equal(reload.code, 0, `reload ${version - 1} exits 0 once all ${workers} new workers serve`)
      generations.push(await servingWorkers(service, control, version, workers))
      t.same(JSON.parse(reload.stdout).workerPids.sort(), generations.at(-1).map((w) => w.pid).sort(), 'the answer names every new worker')
      await sleep(700)
    }
    const stats = [await keepAlive.stop(), await perRequest.stop()]
    t.comment(JSON.stringify(stats.map(({ perPid, ...rest }) => rest)))
    t.same(stats.map((s) => s.failed), [0, 0], 'no request failed (keep-alive, per request)')
    t.same(stats.map((s) => s.non2xx), [0, 0], 'no non-2xx')
    const served = (pid) => stats.reduce((sum, s) => sum + (s.perPid[pid] || 0), 0)
    for (const [index, generation] of generations.entries()) {
      t.ok(generation.every((w) => served(w.pid) > 0), `every worker of generation ${index + 1} served (${generation.map((w) => served(w.pid)).join(', ')})`)
    }
    if (perSlot) {
      // Connection per request: each new connection is hashed to a slot's socket (the same socket
      // for the slot in every generation), so the spread is counted per slot over generations 2-4.
      const bySlot = Array(workers).fill(0)
      for (const generation of generations.slice(1)) for (const w of generation) bySlot[w.slot] += stats[1].perPid[w.pid] || 0
      const total = bySlot.reduce((a, b) => a + b, 0)
      const shares = bySlot.map((count) => Math.round((count / total) * workers * 100) / 100)
      t.ok(shares.every((share) => share >= 0.75 && share <= 1.25), `every slot's share of new connections within ±25% of 1/${workers} (${shares.join(', ')} of ${total})`)
    } else {
      t.ok(service.find((l) => l.supervisor === 'shared-socket'), `Node ${process.version}: the supervisor warned that the workers share one socket`)
    }
    for (const old of generations.slice(0, -1).flat()) await waitUntilGone(old.pid, 15000)
    t.equal(childrenOf(service.pid).length, workers, `only the ${workers} workers of the last generation are left`)
    process.kill(service.pid, 'SIGTERM')
    t.same(await service.exit, { code: 0, signal: null }, 'SIGTERM drains every worker; the supervisor exits 0')
    for (const w of generations.at(-1)) t.notOk(isAlive(w.pid), `worker ${w.slot} is gone`)
  })
}

test('--workers 3: one of the three new workers exits at boot: the reload fails, the old generation serves on, 0 failed', async (t) => {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '3'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const old = await servingWorkers(service, control, 1, 3)
  const load = startLoad(t, target, { connections: 30, keepAlive: true })
  await sleep(300)
  writeRelease(dir, { version: 2, plugin: PLUGIN, exitAtStartInSlot: 1 })
  const reload = await cli(['reload', '--control', control, '--json'])
  t.equal(reload.code, 1, 'reload exits 1')
  t.equal(JSON.parse(reload.stdout).error.code, 'HOT_RELOAD_SUCCESSOR_EXITED', 'with the cause')
  await sleep(500)
  const after = await status(control)
  t.same(after.workers.filter((w) => w.state === 'serving').map((w) => w.pid).sort(), old.map((w) => w.pid).sort(), 'the three old workers serve on')
  t.equal(after.workers.length, 3, 'the new workers that did start were taken down')
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed')
  t.same(Object.keys(stats.versions), ['1'], 'only the old release served')
})

test('--workers 2: a release that throws at boot, then one that never becomes ready (booted one worker after the other: the second once the first has listened, while the first fails its readiness check): each reload exits 1, both old workers serve on, 0 failed; sd_notify READY=1 once both serve', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const { socketPath: notifySocket, messages } = await notifyReceiver(t, dir)
  // The release that never becomes ready fails at --ready-timeout: 5 s instead of the helper's 10 s
  // (still several boots of the good release's workers on a loaded machine).
  const { control, service } = startSupervised(t, { dir, extra: ['--workers', '2', '--ready-timeout', '5000', '--boot-concurrency', '1'], env: { NOTIFY_SOCKET: notifySocket } })
  const target = await servingTarget(service)
  await waitFor(() => messages().some((m) => m.includes('READY=1')), 30000, 'READY=1')
  const atReady = await status(control)
  t.equal(atReady.workers.filter((w) => w.generation === 1 && w.state === 'serving').length, 2, `READY=1 came once both workers served (${JSON.stringify(atReady.workers)})`)
  const old = await servingWorkers(service, control, 1, 2)
  const load = startLoad(t, target, { connections: 20, keepAlive: true })
  const perRequest = startLoad(t, target, { connections: 5, keepAlive: false })
  await sleep(300)
  writeRelease(dir, { version: 2, throwAtBoot: true })
  const thrown = await cli(['reload', '--control', control, '--json'])
  t.equal(thrown.code, 1, 'a release that throws at boot: exit 1')
  t.equal(JSON.parse(thrown.stdout).error.code, 'HOT_RELOAD_SUCCESSOR_EXITED', 'with the cause')
  // Slot 1's new worker never started (no wave after a failure): its old worker hears the same two events.
  for (const worker of old) {
    const failed = await service.waitForLine((l) => l.hotReloadEvent === 'reloadFailed' && l.pid === worker.pid, 10000, `slot ${worker.slot}'s reloadFailed`)
    const reloading = service.lines.findIndex((l) => l.hotReloadEvent === 'reloading' && l.pid === worker.pid)
    t.ok(reloading !== -1 && reloading < service.lines.indexOf(failed), `slot ${worker.slot}'s worker heard reloading, then reloadFailed`)
  }
  writeRelease(dir, { version: 3, notReady: true, plugin: PLUGIN })
  const hanging = await cli(['reload', '--control', control, '--json'])
  t.equal(hanging.code, 1, 'a release that never becomes ready: exit 1')
  t.match(JSON.parse(hanging.stdout).error.message, /readyTimeout|ready/i, 'with the cause')
  // The release that throws started slot 0 only (no wave after a failure); this one started both.
  const lastStarts = service.filter((l) => l.supervisor === 'generation-starting' && l.trigger === 'reload').slice(-2)
  const generation = lastStarts[1].generation
  t.same(lastStarts.map((l) => [l.generation, l.slot]), [[generation, 0], [generation, 1]],
    'both workers of the release that never becomes ready were started: the second once the first had listened, not once it was ready')
  await sleep(500)
  const after = await status(control)
  t.same(after.workers.map((w) => w.pid).sort(), old.map((w) => w.pid).sort(), 'only the two old workers are left, serving')
  t.ok(after.workers.every((w) => w.state === 'serving'))
  const stats = [await load.stop(), await perRequest.stop()]
  t.same(stats.map((s) => s.failed), [0, 0], 'no request failed (keep-alive, per request)')
  t.same(stats.flatMap((s) => Object.keys(s.versions)), ['1', '1'], 'only the old release answered')
  t.equal(messages().filter((m) => m.includes('READY=1')).length >= 1, true)
})

test('--workers 2, the second worker slow to boot at the first start: status says starting until both serve, as READY=1 waits', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, slots: { 1: { bootDelay: 3000 } } })
  const { control, service } = startSupervised(t, { dir, extra: ['--workers', '2'] })
  await service.waitForLine((l) => l.event === 'boot-delay', 20000, 'the second worker\'s slow boot')
  await servingTarget(service)
  const early = await status(control)
  t.match(early, { state: 'starting', generation: 1 }, 'the first worker serves, the service is still starting')
  await waitFor(async () => (await status(control)).workers.filter((w) => w.state === 'serving').length === 2, 30000, 'both workers to serve')
  t.equal((await status(control)).state, 'serving', 'serving once both serve')
})

test('--workers 2 under systemd socket activation: both workers serve the activated socket (shared, with a warning) and reload with 0 failed', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const port = await freePort()
  const control = path.join(dir, 'ctl', 'app.sock')
  const service = Service.start(t, {
    cwd: dir,
    env: { PORT: String(port) },
    command: 'systemd-socket-activate',
    args: ['-l', `127.0.0.1:${port}`, process.execPath, BIN, 'start', '--control', control, '--workers', '2', '--', process.execPath, FIXTURE_APP]
  })
  const target = { host: '127.0.0.1', port }
  await service.waitForLine((l) => /Listening on/.test(l.raw || ''), 10000, 'systemd-socket-activate to listen')
  // The first connection starts the service; it waits in the activated socket's queue meanwhile.
  const load = startLoad(t, target, { connections: 20, keepAlive: true })
  const first = await servingWorkers(service, control, 1, 2)
  t.ok(service.find((l) => l.supervisor === 'shared-socket'), 'the supervisor warned that the workers share the activated socket')
  for (const version of [2, 3]) {
    writeRelease(dir, { version, plugin: PLUGIN })
    const reload = await cli(['reload', '--control', control])
    t.equal(reload.code, 0, `reload to ${version} exits 0`)
    t.match(reload.stdout, /^reloaded: generation \d+ \(pids \d+, \d+\) serving/, 'it names both new workers')
  }
  const last = await servingWorkers(service, control, 3, 2)
  await sleep(500)
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed')
  t.ok(first.concat(last).every((w) => stats.perPid[w.pid] > 0) || last.every((w) => stats.perPid[w.pid] > 0), `the workers served (${JSON.stringify(stats.perPid)})`)
  t.ok(stats.versions[3] > 0, 'the last release answered')
  process.kill(service.pid, 'SIGTERM')
  t.same(await service.exit, { code: 0, signal: null })
})

test('--workers 2: a worker killed after the probation is restarted alone in its slot; the other serves on, nothing refused', async (t) => {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '2', '--probation', '300', '--restart-delay', '200'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const [slot0, slot1] = (await servingWorkers(service, control, 1, 2)).sort((a, b) => a.slot - b.slot)
  const load = startLoad(t, target, { connections: 20, keepAlive: false })
  await sleep(500)
  process.kill(slot1.pid, 'SIGKILL')
  const replaced = await waitFor(async () => {
    const now = await status(control)
    return now.workers.find((w) => w.slot === 1 && w.state === 'serving' && w.pid !== slot1.pid)
  }, 20000, 'slot 1 to get a new worker', STATUS_POLL_MS)
  const now = await status(control)
  t.equal(now.generation, 1, 'still generation 1: the slot was refilled, not the generation replaced')
  t.ok(now.workers.some((w) => w.pid === slot0.pid && w.state === 'serving'), 'slot 0 served on, untouched')
  t.equal(replaced.restarts, 1, 'the restart is counted in its slot')
  await sleep(500)
  const stats = await load.stop()
  t.comment(JSON.stringify({ ...stats, perPid: undefined }))
  // Requests inside the killed worker die with it (README: not promised); the rest are served by
  // the other worker, and the accept queue holds new connections meanwhile: none is refused.
  t.ok(stats.failed <= 20, `at most the requests in flight on the killed worker failed (${stats.failed} of 20 clients)`)
  t.notOk(stats.errors.ECONNREFUSED, 'no connection refused')
  t.ok((stats.perPid[replaced.pid] || 0) > 0, 'the new worker serves')
})

test('--workers 2: while a killed worker\'s slot waits for its slow replacement, the other worker accepts on its socket: no request waits for the gap', { buffered: false }, async (t) => {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '2', '--probation', '300', '--restart-delay', '1000'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const [slot0, slot1] = (await servingWorkers(service, control, 1, 2)).sort((a, b) => a.slot - b.slot)
  const results = []
  const load = startLoad(t, target, { connections: 20, keepAlive: false, onResult: (r) => results.push(r) })
  await sleep(700)
  // The replacement boots slowly too: the slot is empty for the restart delay and the boot.
  writeRelease(dir, { version: 1, plugin: PLUGIN, bootDelay: 1000 })
  const killedAt = performance.now()
  process.kill(slot1.pid, 'SIGKILL')
  const replaced = await waitFor(async () => {
    const now = await status(control)
    return now.workers.find((w) => w.slot === 1 && w.state === 'serving' && w.pid !== slot1.pid)
  }, 20000, 'slot 1 to get a new worker')
  const gapMs = performance.now() - killedAt
  await sleep(700)
  const stats = await load.stop()
  t.comment(JSON.stringify({ ...stats, perPid: undefined, gapMs: Math.round(gapMs) }))
  t.ok(gapMs >= 2000, `slot 1 had no worker for ${Math.round(gapMs)} ms`)
  // Requests inside the killed worker die with it (README: not promised). Every request that
  // started after the kill went to slot 0's socket or waited on slot 1's: none may fail.
  const after = results.filter((r) => r.start > killedAt + 5)
  const inGap = after.filter((r) => r.start < killedAt + gapMs - 500)
  t.ok(stats.failed <= 20, `at most the requests in flight on the killed worker failed (${stats.failed} of 20 clients)`)
  t.equal(after.filter((r) => !r.ok).length, 0, `every request started after the kill succeeded (${after.length})`)
  const slowest = Math.max(...after.map((r) => r.end - r.start))
  t.ok(slowest < gapMs / 4, `no request waited for the gap: the slowest took ${Math.round(slowest)} ms, the gap was ${Math.round(gapMs)} ms`)
  t.ok(inGap.length > 200, `requests went on while slot 1 had no worker (${inGap.length})`)
  if (perSlot) {
    const covered = service.find((l) => l.supervisor === 'slot-covered' && l.slot === 1)
    t.equal(covered?.workerPid, slot0.pid, 'the supervisor gave slot 1\'s socket to slot 0\'s worker')
    const uncovered = await service.waitForLine((l) => l.hotReload === 'slot-uncovered' && l.pid === slot0.pid, 5000, 'slot 0 to stop covering')
    t.ok(uncovered.connections > 100, `slot 0's worker accepted ${uncovered.connections} connections on slot 1's socket, then stopped`)
    // The supervisor's logger is asynchronous: its line may come after the worker's.
    const served = await service.waitForLine((l) => l.supervisor === 'slot-uncovered' && l.slot === 1, 5000, 'the supervisor to log the uncover')
    t.ok(served !== undefined, 'once slot 1 served again')
  } else {
    t.ok(service.find((l) => l.supervisor === 'shared-socket'), `Node ${process.version}: one shared socket, which the other worker accepts on anyway`)
  }
  t.ok((stats.perPid[replaced.pid] || 0) > 0, 'the new worker serves')
})

test('--workers 2: keep-alive connections are spread evenly (20 connections, 2 rounds, WebSockets beside them): each worker holds 10 ± 1 and serves its share of requests within ±25%, no client reconnects', { buffered: false }, async (t) => {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '2'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN, websocket: true })
  const target = await servingTarget(service)
  const workers = await servingWorkers(service, control, 1, 2)
  const pids = workers.map((w) => w.pid)
  // Long-lived connections carry no requests here and cannot move: they are not what the balance
  // weighs (counted, they pushed the keep-alive clients onto the worker with fewer of them).
  const webSockets = webSocketClients(t, target, '/ws', 6)
  await waitFor(() => webSockets.clients.every((c) => c.greetings.length === 1), 10000, 'the WebSockets to open')
  await sleep(500)
  t.same((await status(control)).workers.filter((w) => pids.includes(w.pid)).map((w) => w.connections ?? 0), [0, 0], '6 WebSockets open: no worker counts them')
  for (let round = 1; round <= 2; round++) {
    // Clients that pause 10 ms between requests, each free connection used in turn (fifo): requests
    // then follow connections. (Saturating clients on this shared 2-core machine measure the
    // scheduler instead: with even connections a worker that gets less CPU serves fewer requests,
    // whatever the balance; BENCHMARKS.md, "The keep-alive balance".)
    const load = startLoad(t, target, { connections: 20, keepAlive: true, pauseMs: 10, scheduling: 'fifo' })
    // The kernel hashes the 20 connections as it likes; the supervisor's balance moves idle ones.
    const held = await waitFor(async () => {
      const now = (await status(control)).workers.filter((w) => pids.includes(w.pid)).map((w) => w.connections)
      return now.every((c) => c >= 9 && c <= 11) && now[0] + now[1] === 20 ? now : undefined
    }, 10000, 'both workers to hold 10 ± 1 connections', STATUS_POLL_MS)
    const before = { ...load.stats.perPid }
    await sleep(3000)
    const stats = await load.stop()
    const served = pids.map((pid) => (stats.perPid[pid] || 0) - (before[pid] || 0))
    const total = served[0] + served[1]
    const shares = served.map((count) => Math.round((count / total) * 200) / 100)
    t.ok(shares.every((share) => share >= 0.75 && share <= 1.25), `round ${round}: connections ${held.join(' / ')}; every worker's share of requests within ±25% of 1/2 (${shares.join(', ')} of ${total})`)
    t.equal(stats.failed, 0, `round ${round}: no request failed`)
    t.equal(stats.socketsOpened, 20, `round ${round}: the clients kept their 20 connections (moved ones too)`)
    await waitFor(async () => (await status(control)).workers.every((w) => w.connections === 0), 5000, 'the connections to close', STATUS_POLL_MS)
  }
  t.ok(webSockets.clients.every((c) => c.closes.length === 0), 'the WebSockets stayed open throughout')
  webSockets.stop()
  process.kill(service.pid, 'SIGTERM')
  t.same(await service.exit, { code: 0, signal: null }, 'SIGTERM: the supervisor exits 0')
})

test('--workers 2: a new worker that dies within the probation: the whole old generation serves again', async (t) => {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '2', '--probation', '5000'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const old = await servingWorkers(service, control, 1, 2)
  const load = startLoad(t, target, { connections: 20, keepAlive: true })
  await sleep(300)
  writeRelease(dir, { version: 2, plugin: PLUGIN, exitAfterServingMs: 300, exitInSlot: 0 })
  const reload = await cli(['reload', '--control', control, '--json'])
  t.equal(reload.code, 0, 'the reload itself succeeded (both new workers were ready)')
  await service.waitForLine((l) => l.supervisor === 'serves-again', 15000, 'the old generation to serve again')
  const back = await servingWorkers(service, control, 1, 2)
  t.same(back.map((w) => w.pid).sort(), old.map((w) => w.pid).sort(), 'both old workers serve again')
  const after = await status(control)
  t.match(after.lastReload, { ok: true, generation: 2, rolledBack: String }, 'the status says the last reload was rolled back')
  const text = await cli(['status', '--control', control])
  t.match(text.stdout, /last reload: ok, generation 2 .*; rolled back \(.*\), generation 1 serves again/)
  await waitFor(async () => (await status(control)).workers.every((w) => w.generation === 1), 15000, 'the rest of generation 2 to drain away', STATUS_POLL_MS)
  await sleep(300)
  const stats = await load.stop()
  t.comment(JSON.stringify({ ...stats, perPid: undefined }))
  t.ok(stats.versions[1] > 0, 'the old release serves again')
  // Requests inside the worker that died die with it (README: not promised); the others are served.
  t.ok(stats.ok > 0 && stats.failed <= 20, `at most the requests in flight on the dead worker failed (${stats.failed})`)
})

/**
 * Three workers (with `extra` flags) under keep-alive and per-request load, reloaded once into
 * release 2 (with `release2` over it): the generations' workers, the loads, the reload's answer, and
 * generation 2's starts.
 */
async function threeWorkersReloaded (t, extra, release2 = {}) {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '3', ...extra, '--probation', '500'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const first = await servingWorkers(service, control, 1, 3)
  const loads = [startLoad(t, target, { connections: 30, keepAlive: true }), startLoad(t, target, { connections: 10, keepAlive: false })]
  await sleep(500)
  writeRelease(dir, { version: 2, plugin: PLUGIN, ...release2 })
  const reload = await cli(['reload', '--control', control, '--json'])
  const second = await servingWorkers(service, control, 2, 3)
  const starts = service.filter((l) => l.supervisor === 'generation-starting' && l.generation === 2).sort((a, b) => a.time - b.time)
  // When a started worker was up: it adopted the sockets (its boot is over).
  const upAt = (start) => service.find((l) => l.hotReload === 'adopted-socket' && l.pid === start.workerPid)?.time
  return { dir, control, service, first, second, loads, reload, starts, upAt }
}

test('--workers 3 --boot-concurrency 2: a reload boots the new workers two, then one once those have booted, all committed together; 0 failed', async (t) => {
  const slowBootMs = 400
  const { service, first, second, loads: [keepAlive, perRequest], reload, starts: byTime, upAt } = await threeWorkersReloaded(t, ['--boot-concurrency', '2'], { slowBootMs })
  // A worker's boot is over once its app calls listen(), at least slowBootMs after its slow part began.
  const bootedAt = (start) => service.find((l) => l.event === 'slow-boot' && l.pid === start.workerPid)?.time + slowBootMs
  t.equal(reload.code, 0, 'the reload exits 0 once all three new workers serve')
  const starts = [...byTime].sort((a, b) => a.slot - b.slot)
  t.same(starts.map((l) => [l.trigger, l.slot]), [['reload', 0], ['reload', 1], ['reload', 2]], 'one reload of three slots')
  t.ok(starts[1].time < upAt(starts[0]), 'slots 0 and 1 boot together')
  t.ok(bootedAt(starts[0]) <= starts[2].time && bootedAt(starts[1]) <= starts[2].time, 'slot 2 starts once both had booted (their listen()), not with them')
  const served = service.filter((l) => l.hotReloadEvent === 'serving' && l.generation === 2).map((l) => l.time)
  t.equal(served.length, 3, 'the three log serving')
  t.ok(Math.min(...served) >= upAt(starts[2]), 'none serves before the last one was up: committed together')
  t.same(second.map((w) => w.slot).sort(), [0, 1, 2])
  for (const old of first) await waitUntilGone(old.pid, 15000)
  const stats = [await keepAlive.stop(), await perRequest.stop()]
  t.comment(JSON.stringify(stats.map(({ perPid, ...rest }) => rest)))
  t.same(stats.map((s) => s.failed), [0, 0], 'no request failed (keep-alive, per request)')
  t.ok(stats[0].versions[2] > 0 && stats[1].versions[2] > 0, 'release 2 served')
})

test('--workers 3 --reload-batch 1: a rolling reload boots one new worker at a time, 0 failed; a failure in a later batch takes it all back', async (t) => {
  const { dir, control, service, first, second, loads: [keepAlive, perRequest], reload, starts, upAt } = await threeWorkersReloaded(t, ['--reload-batch', '1'])
  t.equal(reload.code, 0, 'the rolling reload exits 0 once all three slots run the new release')
  // One new worker boots at a time: each batch starts once the previous batch's worker is up (it
  // adopted the sockets, then passed readiness and was committed before the next one started).
  t.same(starts.map((l) => [l.trigger, l.slot]), [['batch', 0], ['batch', 1], ['batch', 2]], 'three batches of one slot each, in order')
  for (let i = 1; i < starts.length; i++) {
    const up = upAt(starts[i - 1])
    t.ok(up !== undefined && up <= starts[i].time, `slot ${i - 1}'s new worker was up before slot ${i}'s started`)
  }
  for (const old of first) await waitUntilGone(old.pid, 15000)
  // Slot 0 is replaced, then slot 1's new worker exits at boot: all of it goes back.
  writeRelease(dir, { version: 3, plugin: PLUGIN, exitAtStartInSlot: 1 })
  const broken = await cli(['reload', '--control', control, '--json'])
  t.equal(broken.code, 1, 'a failure in the second batch fails the reload')
  const back = await servingWorkers(service, control, 2, 3)
  t.same(back.map((w) => w.pid).sort(), second.map((w) => w.pid).sort(), 'the three workers of generation 2 serve again, slot 0\'s included')
  const answer = JSON.parse(broken.stdout)
  t.equal(answer.generation, 2, 'the answer names the generation that serves again')
  t.equal(answer.pid, back.find((w) => w.slot === 0)?.pid, 'and its slot 0 worker, not the new one draining away')
  await waitFor(async () => (await status(control)).workers.every((w) => w.generation === 2), 15000, 'generation 3\'s slot 0 worker to drain away', STATUS_POLL_MS)
  await sleep(500)
  const stats = [await keepAlive.stop(), await perRequest.stop()]
  t.comment(JSON.stringify(stats.map(({ perPid, ...rest }) => rest)))
  t.same(stats.map((s) => s.failed), [0, 0], 'no request failed (keep-alive, per request)')
  t.ok(stats[0].versions[2] > 0 && stats[1].versions[2] > 0, 'release 2 served')
})

test('--workers 2 --reload-batch 1: a new worker that crashes while the next batch boots fails the reload (all or nothing): the old generation serves again, one worker per slot', async (t) => {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '2', '--reload-batch', '1', '--probation', '500'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  await servingTarget(service)
  const first = await servingWorkers(service, control, 1, 2)
  writeRelease(dir, { version: 2, plugin: PLUGIN, slowBootMs: 1500 })
  const reload = cli(['reload', '--control', control, '--json'])
  const newSlot0 = await service.waitForLine((l) => l.supervisor === 'generation-starting' && l.generation === 2 && l.slot === 0, 15000, 'slot 0\'s new worker')
  await service.waitForLine((l) => l.supervisor === 'generation-starting' && l.generation === 2 && l.slot === 1, 15000, 'the second batch')
  t.ok(newSlot0.workerPid > 0, `slot 0's new worker: pid ${newSlot0.workerPid}`)
  if (!(newSlot0.workerPid > 0)) return
  process.kill(newSlot0.workerPid, 'SIGKILL')
  const answer = await reload
  t.equal(answer.code, 1, 'the reload failed')
  t.match(JSON.parse(answer.stdout), { ok: false, generation: 1, error: { code: 'HOT_RELOAD_SUCCESSOR_EXITED' } })
  const back = await servingWorkers(service, control, 1, 2)
  t.same(back.map((w) => w.pid).sort(), first.map((w) => w.pid).sort(), 'both workers of generation 1 serve again')
  await waitFor(async () => (await status(control)).workers.every((w) => w.generation === 1), 15000, 'generation 2 to drain away', STATUS_POLL_MS)
  await sleep(1000)
  const now = await status(control)
  t.same(now.workers.map((w) => w.slot).sort(), [0, 1], 'one worker per slot')
})

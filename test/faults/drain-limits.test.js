'use strict'
// Drains that cannot finish, reloads that pile up, and a supervisor stopped in the middle of a
// reload: the service keeps answering and the number of old generations stays bounded.
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { Service, tempDir, writeRelease, waitFor, waitUntilGone, isAlive, sleep, childrenOf, startSupervised: start, servingTarget } = require('../helpers/processes')
const { startLoad } = require('../helpers/load')
const { request, serviceUnderLoad } = require('./common')
const { deafWebSocket } = require('../helpers/long-lived')

// Two tests at a time: each waits mostly on drains and drainTimeout (a few clients each), so their
// waits overlap. Each has its own service, port and clients. The 20 signals in one second, with
// the most load, run alone.
tap.jobs = 2

/** A request that never ends by itself (the fixture answers /slow after `ms`). */
function endless (target) {
  return request(target, { path: '/slow?ms=600000', timeoutMs: 120000 }).then(
    (answer) => ({ answered: answer.status }),
    (err) => ({ error: err.code || err.message })
  )
}

test('standalone: with maxDrainingGenerations 2, the oldest draining generation is cut at the next reload', async (t) => {
  const plugin = { idleGrace: 300, readyTimeout: 20000, drainTimeout: 60000, probation: 300, maxDrainingGenerations: 2 }
  const { dir, service, target, stopLoads } = await serviceUnderLoad(t, { plugin })
  const generations = [service.pid]
  const stuck = []
  for (let next = 2; next <= 5; next++) {
    // A request that never ends, held by the generation serving now.
    stuck.push(endless(target))
    await service.waitForLine((l) => l.pid === generations.at(-1) && l.req?.url === '/slow?ms=600000', 10000, 'the endless request to arrive')
    writeRelease(dir, { version: next, plugin })
    process.kill(generations.at(-1), 'SIGUSR2')
    generations.push(await service.generationServing(next))
    const draining = generations.slice(0, -1).filter(isAlive)
    t.ok(draining.length <= 3, `after reload ${next - 1}: ${draining.length} draining (the cut one may still be closing)`)
  }
  // Generations 1 and 2 were one too many at the 3rd and 4th reloads.
  await waitUntilGone(generations[0])
  await waitUntilGone(generations[1])
  // A process can be gone before its last lines have come through the pipe.
  const cuts = await service.waitForLines((l) => l.hotReload === 'drain-cut' && l.cause === 'max-draining', 2, 5000, 'both cut generations to log it')
  t.same(cuts.map((l) => l.pid).sort(), [generations[0], generations[1]].sort(), 'the two oldest generations said why they ended their drain')
  t.same(cuts.map((l) => l.cutConnections), [1, 1], 'each cut its one endless request, and counted it')
  t.same(generations.slice(2).filter(isAlive), generations.slice(2), 'generations 3 and 4 still drain, 5 serves')
  const outcomes = await Promise.race([Promise.all(stuck.slice(0, 2)), sleep(5000).then(() => 'pending')])
  t.not(outcomes, 'pending', 'the cut requests ended')
  t.ok(outcomes.every((o) => o.error !== undefined), `the cut requests failed, as cut requests do (${JSON.stringify(outcomes)})`)
  const stats = await stopLoads()
  t.equal(stats[0].failed, 0, `the ordinary load lost nothing (${JSON.stringify(stats[0].errors)})`)
  t.equal(stats[0].non2xx, 0)
})

test('a generation cut in the middle of its moves moves what is idle, lets what is in flight end, and cuts only the request that never ends', async (t) => {
  // The default probation's ramp (1.5 s) and a reload right after the last: the oldest generation is
  // one too many ~0.5 s into its ramp, with most of the 30 connections still waiting their turn, and
  // most of those in the middle of a request (each takes 100 ms, as if it asked a database).
  const plugin = { idleGrace: 300, readyTimeout: 20000, drainTimeout: 60000, maxDrainingGenerations: 1 }
  const { dir, service, target, stopLoads } = await serviceUnderLoad(t, { plugin, load: { connections: 30, keepAlive: true, path: '/slow?ms=100' } })
  const first = service.pid
  const stuck = endless(target)
  await service.waitForLine((l) => l.pid === first && l.req?.url === '/slow?ms=600000', 10000, 'the endless request to arrive')
  writeRelease(dir, { version: 2, plugin })
  process.kill(first, 'SIGUSR2')
  const second = await service.generationServing(2)
  writeRelease(dir, { version: 3, plugin })
  process.kill(second, 'SIGUSR2')
  await service.generationServing(3)
  const cut = await service.waitForLine((l) => l.pid === first && l.hotReload === 'drain-cut', 10000, 'the first generation to be cut')
  t.equal(cut.cause, 'max-draining', 'cut as one generation too many')
  t.equal(cut.cutConnections, 1, 'only the endless request was cut')
  const drained = await service.waitForLine((l) => l.pid === first && l.hotReloadEvent === 'drained', 10000, 'the first generation to end its drain')
  t.ok(drained.movedConnections >= 25, `its keep-alive connections moved (${drained.movedConnections})`)
  t.ok((await stuck).error !== undefined, 'the endless request ended, cut')
  const [stats] = await stopLoads()
  t.equal(stats.failed, 0, `the load lost nothing (${JSON.stringify(stats.errors)})`)
  t.equal(stats.non2xx, 0)
  t.equal(stats.socketsOpened, 30, 'no client had to open another connection')
})

// Long drains: only the limit or the deadline under test may end them.
const startSupervised = (t, dir, extra = []) => start(t, { dir, extra: ['--ready-timeout', '20000', '--drain-timeout', '60000', ...extra] })

test('supervised: with --max-draining 2, the oldest draining generation is cut at the next reload', async (t) => {
  const dir = tempDir(t)
  const plugin = { idleGrace: 300 }
  writeRelease(dir, { version: 1, plugin })
  const { service } = startSupervised(t, dir, ['--max-draining', '2'])
  const target = await servingTarget(service)
  const load = startLoad(t, target, { connections: 10, keepAlive: true })
  const stuck = []
  const workers = [await service.generationServing(1)]
  for (let next = 2; next <= 5; next++) {
    // The generation before stops accepting once told to drain: until then a new connection may reach it.
    if (workers.length > 1) await service.waitForLine((l) => l.pid === workers.at(-2) && l.hotReloadEvent === 'draining', 10000, 'the previous generation to drain')
    stuck.push(endless(target))
    await service.waitForLine((l) => l.pid === workers.at(-1) && l.req?.url === '/slow?ms=600000', 10000, 'the endless request to arrive')
    writeRelease(dir, { version: next, plugin })
    process.kill(service.pid, 'SIGHUP')
    workers.push(await service.generationServing(next))
  }
  await waitUntilGone(workers[0])
  await waitUntilGone(workers[1])
  // The workers' last lines (and so the supervisor's earlier ones) may still be in the pipe.
  const cuts = await service.waitForLines((l) => l.hotReload === 'drain-cut' && l.cause === 'supervisor-max-draining' && l.cutConnections === 1, 2, 5000, 'both cut workers to log it')
  // The supervisor's lines come through its own (asynchronous) logger: wait for them too.
  const orders = await service.waitForLines((l) => l.supervisor === 'max-draining-cut' && l.maxDraining === 2, 2, 5000, 'the supervisor to log both orders')
  t.same(orders.map((l) => l.workerPid).sort(), [workers[0], workers[1]].sort(), 'the supervisor told the two oldest to end their drain')
  t.same(cuts.map((l) => l.pid).sort(), [workers[0], workers[1]].sort(), 'each cut its endless request and counted it')
  t.same(workers.slice(2).filter(isAlive), workers.slice(2), 'generations 3 and 4 still drain, 5 serves')
  const stats = await load.stop()
  t.equal(stats.failed, 0, `the ordinary load lost nothing (${JSON.stringify(stats.errors)})`)
  t.equal(stats.non2xx, 0)
})

test('supervised: a worker cut in the middle of its moves moves what is idle, lets what is in flight end, and cuts only the request that never ends', async (t) => {
  // As the standalone test above: the supervisor's default probation gives a 1.5 s ramp.
  const dir = tempDir(t)
  const plugin = { idleGrace: 300 }
  writeRelease(dir, { version: 1, plugin })
  const { service } = startSupervised(t, dir, ['--max-draining', '1'])
  const target = await servingTarget(service)
  const first = await service.generationServing(1)
  const load = startLoad(t, target, { connections: 30, keepAlive: true, path: '/slow?ms=100' })
  await sleep(300)
  const stuck = endless(target)
  await service.waitForLine((l) => l.pid === first && l.req?.url === '/slow?ms=600000', 10000, 'the endless request to arrive')
  for (const version of [2, 3]) {
    writeRelease(dir, { version, plugin })
    process.kill(service.pid, 'SIGHUP')
    await service.generationServing(version)
  }
  const cut = await service.waitForLine((l) => l.pid === first && l.hotReload === 'drain-cut', 10000, 'the first worker to be cut')
  t.equal(cut.cause, 'supervisor-max-draining', 'cut on the supervisor\'s order')
  t.equal(cut.cutConnections, 1, 'only the endless request was cut')
  t.ok((await stuck).error !== undefined, 'the endless request ended, cut')
  const stats = await load.stop()
  t.equal(stats.failed, 0, `the load lost nothing (${JSON.stringify(stats.errors)})`)
  t.equal(stats.non2xx, 0)
  t.equal(stats.socketsOpened, 30, 'no client had to open another connection')
})

test('20 reload signals in one second, sent to the serving pid as an operator would: 0 failed, one generation left', { buffered: false }, async (t) => {
  const dir = tempDir(t)
  const pidFile = path.join(dir, 'app.pid')
  const plugin = { idleGrace: 300, readyTimeout: 20000, probation: 300, pidFile }
  writeRelease(dir, { version: 1, plugin })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  const load = startLoad(t, target, { connections: 10, keepAlive: true })
  const perRequest = startLoad(t, target, { connections: 5, keepAlive: false })
  writeRelease(dir, { version: 2, plugin })
  const fs = require('node:fs')
  // Written once the app serves, a moment after Fastify's "listening" line.
  await waitFor(() => fs.existsSync(pidFile), 5000, 'the pid file')
  for (let i = 0; i < 20; i++) {
    const pid = Number(fs.readFileSync(pidFile, 'utf8'))
    try { process.kill(pid, 'SIGUSR2') } catch {}
    await sleep(50)
  }
  // Let the last reload (if any) finish and every old generation exit.
  await waitFor(() => service.alive().length === 1 && !service.filter((l) => l.hotReloadEvent === 'reloading').some((l) => isAlive(l.successorPid) && l.successorPid !== service.alive()[0]), 30000, 'one generation left')
  const serving = service.alive()[0]
  await sleep(300)
  const stats = [await load.stop(), await perRequest.stop()]
  t.comment(JSON.stringify(stats))
  t.same(stats.map((s) => s.failed), [0, 0], 'no request failed')
  t.same(stats.map((s) => s.non2xx), [0, 0], 'no non-2xx')
  const started = service.filter((l) => l.hotReloadEvent === 'reloading').length
  const received = service.filter((l) => l.hotReload === 'signal-received' && l.signal === 'SIGUSR2').length
  const answered = service.filter((l) => l.hotReload === 'reload-coalesced' || l.hotReload === 'reload-ignored').length
  t.ok(started >= 1 && started < received, `reloads were coalesced: ${received} signals, ${started} reloads`)
  t.equal(started + answered, received, 'each signal started a reload or was logged as joined or ignored')
  t.equal(Number(fs.readFileSync(pidFile, 'utf8')), serving, 'the pid file names the one generation left')
  t.equal((await request(target, { path: '/health' })).body.pid, serving)
})

test('a reload while the previous drain still runs (long request): both finish, the long request gets its answer', async (t) => {
  const plugin = { idleGrace: 300, readyTimeout: 20000, drainTimeout: 20000, probation: 300 }
  const { dir, service, target, stopLoads } = await serviceUnderLoad(t, { plugin })
  // Much longer than a successor's boot on a loaded machine: generation 1 must still be draining it
  // when the next reload begins.
  // The client waits well past the 9 s the app takes: a request that reached generation 1 late on a
  // loaded machine is still answered, by generation 1, and that is what is checked.
  const long = request(target, { path: '/slow?ms=9000', timeoutMs: 30000 })
  await service.waitForLine((l) => l.req?.url === '/slow?ms=9000', 10000, 'the long request to arrive')
  writeRelease(dir, { version: 2, plugin })
  process.kill(service.pid, 'SIGUSR2')
  const second = await service.generationServing(2)
  writeRelease(dir, { version: 3, plugin })
  // The premise, checked when the next reload begins (not after its successor's boot, which a loaded
  // machine can stretch past the long request: it did once, on a machine at load 15).
  const firstStillDraining = isAlive(service.pid)
  process.kill(second, 'SIGUSR2')
  const third = await service.generationServing(3)
  t.ok(firstStillDraining, 'generation 1 still drains its long request')
  const answer = await long
  t.same([answer.status, answer.body.version], [200, 1], 'the long request finished on release 1')
  await waitUntilGone(service.pid)
  await waitUntilGone(second)
  const stats = await stopLoads()
  t.equal(stats[0].failed, 0, 'no request failed')
  t.equal(stats[0].non2xx, 0)
  t.same(service.alive(), [third])
})

// Its own bounds: drainTimeout, the probation, the onClose grace of 5 s, and a margin of 2 s.
const STUCK_PLUGIN = { idleGrace: 300, readyTimeout: 20000, drainTimeout: 1000, probation: 500 }
const STUCK_BOUND_MS = 1000 + 500 + 5000 + 2000

test('standalone: a generation whose event loop is stuck in its drain is killed by its successor once overdue, not left running', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: STUCK_PLUGIN, blockWhenDraining: true })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  writeRelease(dir, { version: 2, plugin: STUCK_PLUGIN })
  const reloadedAt = Date.now()
  process.kill(service.pid, 'SIGUSR2')
  const successor = await service.generationServing(2)
  t.equal((await request(target)).body.version, 2, 'generation 2 serves')
  const killed = await service.waitForLine((l) => l.hotReload === 'predecessor-killed' && l.predecessorPid === service.pid, 30000, 'the stuck generation to be killed')
  t.ok(Date.now() - reloadedAt >= STUCK_BOUND_MS - 500, `not before its own bounds ran out (${Date.now() - reloadedAt} ms)`)
  t.equal(killed.pid, successor, 'by its successor')
  t.equal(killed.level, 50, 'logged as an error')
  await waitUntilGone(service.pid, 5000)
  t.notOk(isAlive(service.pid), 'it is gone')
  t.same([(await request(target)).body.version, service.alive()], [2, [successor]], 'generation 2 serves on, alone')
})

test('standalone: a successor that is done draining before its stuck predecessor is overdue waits for it, kills it, then exits', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: STUCK_PLUGIN, blockWhenDraining: true })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  writeRelease(dir, { version: 2, plugin: STUCK_PLUGIN })
  process.kill(service.pid, 'SIGUSR2')
  const second = await service.generationServing(2)
  // Generation 2 is replaced at once: its own drain is over long before generation 1 is overdue.
  writeRelease(dir, { version: 3, plugin: STUCK_PLUGIN })
  process.kill(second, 'SIGUSR2')
  const third = await service.generationServing(3)
  const waiting = await service.waitForLine((l) => l.hotReload === 'waiting-for-predecessor' && l.pid === second, 15000, 'generation 2 to wait for generation 1')
  t.equal(waiting.predecessorPid, service.pid)
  t.ok(isAlive(second), 'generation 2 waits, drained')
  const killed = await service.waitForLine((l) => l.hotReload === 'predecessor-killed' && l.predecessorPid === service.pid, 30000, 'the stuck generation to be killed')
  t.equal(killed.pid, second, 'by generation 2, before it exits')
  await waitUntilGone(service.pid, 5000)
  await waitUntilGone(second, 5000)
  t.notOk(isAlive(service.pid) || isAlive(second), 'both are gone')
  t.same([(await request(target)).body.version, service.alive()], [3, [third]], 'generation 3 serves, alone')
})

test('supervisor: SIGTERM in the middle of a reload cancels it, finishes what is in flight and exits 0', async (t) => {
  const dir = tempDir(t)
  const plugin = { idleGrace: 300 }
  writeRelease(dir, { version: 1, plugin })
  const { service } = startSupervised(t, dir)
  const target = await servingTarget(service)
  await service.generationServing(1)
  const inFlight = request(target, { path: '/slow?ms=1500' })
  writeRelease(dir, { version: 2, plugin, bootDelay: 5000 })
  process.kill(service.pid, 'SIGHUP')
  const started = await service.waitForLine((l) => l.supervisor === 'generation-starting' && l.trigger === 'reload' && l.generation === 2, 10000, 'the reload to start')
  await sleep(300)
  process.kill(service.pid, 'SIGTERM')
  const exit = await Promise.race([service.exit, sleep(20000).then(() => 'timeout')])
  t.same(exit, { code: 0, signal: null }, 'the supervisor exited 0')
  const answer = await inFlight
  t.same([answer.status, answer.body.version], [200, 1], 'the request in flight got its answer')
  await waitUntilGone(started.workerPid, 5000)
  t.notOk(isAlive(started.workerPid), 'the booting successor is gone')
  t.same(childrenOf(service.pid), [], 'no child left behind')
  t.same(service.alive(), [], 'no process left')
  t.ok(service.find((l) => (l.supervisor === 'generation-cancelled' || l.supervisor === 'generation-failed') && l.trigger === 'reload' && l.generation === 2), 'the reload was reported as cancelled')
})

// Event streams and WebSockets now end well inside closeSpread (test/long-lived.test.js): what
// proves the deadline is a stream nothing knows how to end, and a WebSocket client that ignores
// the close frame.
test('a stream that never ends and is not an event stream is cut at drainTimeout, counted, and the old generation exits', async (t) => {
  const http = require('node:http')
  const plugin = { idleGrace: 300, readyTimeout: 20000, drainTimeout: 1500, probation: 300 }
  const { dir, service, target, stopLoads } = await serviceUnderLoad(t, { plugin })
  let received = ''
  const stream = new Promise((resolve) => {
    http.get({ ...target, path: '/stream', agent: false }, (response) => {
      response.setEncoding('utf8')
      response.on('data', (chunk) => { received += chunk })
      response.on('end', () => resolve('ended'))
      response.on('error', () => resolve('error'))
      response.on('aborted', () => resolve('aborted'))
    }).on('error', () => resolve('error'))
  })
  await waitFor(() => received.includes('"version":1'), 5000, 'the first line')
  writeRelease(dir, { version: 2, plugin })
  process.kill(service.pid, 'SIGUSR2')
  await service.generationServing(2)
  const end = await Promise.race([stream, sleep(10000).then(() => 'still open')])
  t.not(end, 'still open', `the stream was cut (${end})`)
  t.not(end, 'ended', 'it did not end cleanly: nothing ended it before the deadline')
  const cut = await service.waitForLine((l) => l.pid === service.pid && l.hotReload === 'drain-cut' && l.cause === 'drain-timeout' && l.drainTimeout === 1500 && l.cutConnections === 1, 5000, 'the cut to be logged')
  t.equal(cut.cutConnections, 1, 'one connection cut, counted in the log')
  await waitUntilGone(service.pid)
  // The process may be gone before its last lines reach us through the pipe: wait for them.
  const drained = await service.waitForLine((l) => l.pid === service.pid && l.hotReloadEvent === 'drained', 5000, 'the drain result')
  t.equal(drained.cutConnections, 1, 'and in the drain result')
  const stats = await stopLoads()
  t.equal(stats[0].failed, 0, 'the ordinary load lost nothing')
})

test('a WebSocket client that ignores the close frame is sent 1001, then cut at drainTimeout and counted', async (t) => {
  const plugin = { idleGrace: 300, readyTimeout: 20000, drainTimeout: 2000, closeSpread: 500, probation: 300 }
  const { dir, service, target, stopLoads } = await serviceUnderLoad(t, { plugin, release: { websocket: true } })
  const deaf = await deafWebSocket(target, '/ws')
  t.teardown(() => deaf.socket.destroy())
  writeRelease(dir, { version: 2, plugin, websocket: true })
  process.kill(service.pid, 'SIGUSR2')
  await service.generationServing(2)
  const drainStart = (await service.waitForEvent('draining', (l) => l.pid === service.pid && l.reason === 'reload')).time
  await waitFor(() => deaf.closeFrame !== null, 5000, 'the close frame')
  t.equal(deaf.closeFrame.code, 1001, 'it was sent 1001 Going Away')
  t.ok(deaf.closeFrame.t - drainStart < plugin.drainTimeout, `before the deadline (${deaf.closeFrame.t - drainStart} ms into the drain)`)
  await waitFor(() => deaf.ended, 10000, 'the connection to be cut')
  const cut = await service.waitForLine((l) => l.pid === service.pid && l.hotReload === 'drain-cut' && l.cause === 'drain-timeout' && l.drainTimeout === 2000 && l.cutConnections === 1, 5000, 'the cut to be logged')
  t.equal(cut.cutConnections, 1, 'the one connection that did not answer was cut at drainTimeout and counted')
  t.ok(deaf.endedAt - drainStart >= plugin.drainTimeout - 100, `it was open until the deadline (${deaf.endedAt - drainStart} ms into the drain)`)
  const stats = await stopLoads()
  t.equal(stats[0].failed, 0, 'the ordinary load lost nothing')
})

'use strict'
// The supervisor's workers when things happen at once: a new worker that dies after its ready while
// another worker of its generation still boots; a crashed worker's restart that a reload overtakes;
// two workers that crash close together. Each must end with a live worker in every slot, serving
// the release the supervisor reports, and new clients answered.
const tap = require('tap')
const { test } = tap
const { cli, startSupervised, servingTarget, writeRelease, waitFor, waitUntilGone, isAlive, sleep } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')
const { status, statusOnceUp, servingWorkers, STATUS_POLL_MS } = require('./helpers/supervisor-status')

// Two at a time: they mostly wait on boots.
tap.jobs = 2

const PLUGIN = { idleGrace: 300 }

/** New clients for `ms`, a connection per request: what they got (every slot's socket is tried). */
async function newClients (t, target, ms = 1500) {
  const load = startLoad(t, target, { connections: 4, keepAlive: false, timeoutMs: 3000 })
  await sleep(ms)
  return load.stop()
}

test('--workers 2: a new worker that dies after its ready while the other still boots fails the reload; the old generation serves on in both slots', async (t) => {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '2', '--boot-concurrency', '2', '--probation', '1000'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const first = await servingWorkers(service, control, 1, 2)
  // Slot 0's new worker is ready at once and dies 1.5 s after it listened; slot 1's boots for 4 s.
  writeRelease(dir, { version: 2, plugin: PLUGIN, slots: { 0: { crashAfterMs: 1500 }, 1: { bootDelay: 4000 } } })
  const reload = await cli(['reload', '--control', control, '--json'])
  t.equal(reload.code, 1, 'the reload failed')
  t.match(JSON.parse(reload.stdout), { ok: false, generation: 1, error: { code: 'HOT_RELOAD_SUCCESSOR_EXITED' } }, 'because a new worker exited')
  const serving = (await status(control)).workers.filter((w) => w.state === 'serving')
  t.same(serving.map((w) => w.pid).sort(), first.map((w) => w.pid).sort(), 'both workers of generation 1 serve on')
  const clients = await newClients(t, target)
  t.equal(clients.failed, 0, 'every new client answered')
  t.same(Object.keys(clients.versions), ['1'], 'by release 1')
  writeRelease(dir, { version: 3, plugin: PLUGIN })
  const next = await cli(['reload', '--control', control, '--json'])
  t.equal(next.code, 0, 'the next release goes in')
  await servingWorkers(service, control, JSON.parse(next.stdout).generation, 2)
})

test('--workers 2: a crashed worker\'s restart still booting when a reload commits is taken down, not left serving the old release', async (t) => {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '2', '--probation', '1000'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const first = await servingWorkers(service, control, 1, 2)
  // Slot 1's restart boots for 5 s; the reload's workers at once.
  writeRelease(dir, { version: 1, plugin: PLUGIN, slots: { 1: { slowBootMs: 5000 } } })
  const killed = first.find((w) => w.slot === 1).pid
  process.kill(killed, 'SIGKILL')
  const restart = await service.waitForLine((l) => l.supervisor === 'generation-starting' && l.trigger === 'restart' && l.slot === 1 && l.workerPid !== killed, 15000, 'slot 1\'s restart')
  // It has read its release (and boots slowly) before the next one is written.
  await service.waitForLine((l) => l.event === 'slow-boot' && l.pid === restart.workerPid, 15000, 'the restart to boot slowly')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const reload = await cli(['reload', '--control', control, '--json'])
  t.equal(reload.code, 0, 'the reload succeeded')
  await servingWorkers(service, control, 2, 2)
  await waitUntilGone(restart.workerPid, 15000)
  t.notOk(isAlive(restart.workerPid), 'the restarted worker of generation 1 was taken down once ready')
  t.ok(await service.waitForLine((l) => l.supervisor === 'generation-cancelled' && l.trigger === 'restart', 10000, 'the restart to be reported cancelled'), 'and its restart reported cancelled')
  const now = await waitFor(async () => {
    const answer = await status(control)
    return answer.workers.every((w) => w.generation === 2) ? answer : undefined
  }, 15000, 'generation 1 to be gone', STATUS_POLL_MS)
  t.same(now.workers.map((w) => [w.slot, w.state]).sort(), [[0, 'serving'], [1, 'serving']], 'one worker of generation 2 per slot')
  const clients = await newClients(t, target)
  t.equal(clients.failed, 0, 'every new client answered')
  t.same(Object.keys(clients.versions), ['2'], 'by release 2 only')
})

test('--workers 2: both workers crash, the second while the first one\'s restart boots: both slots get a worker again, and reloads work', async (t) => {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '2'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const first = await servingWorkers(service, control, 1, 2)
  writeRelease(dir, { version: 1, plugin: PLUGIN, bootDelay: 2000 })
  const killed = first.find((w) => w.slot === 0).pid
  process.kill(killed, 'SIGKILL')
  await service.waitForLine((l) => l.supervisor === 'generation-starting' && l.trigger === 'restart' && l.slot === 0 && l.workerPid !== killed, 15000, 'slot 0\'s restart')
  process.kill(first.find((w) => w.slot === 1).pid, 'SIGKILL')
  const back = await waitFor(async () => {
    const now = await statusOnceUp(control)
    const serving = now?.workers.filter((w) => w.state === 'serving') ?? []
    return serving.length === 2 ? serving : undefined
  }, 20000, 'a serving worker in both slots', STATUS_POLL_MS)
  t.same(back.map((w) => w.slot).sort(), [0, 1], 'one worker per slot')
  t.notOk(first.some((w) => isAlive(w.pid)), 'the crashed workers are gone')
  const clients = await newClients(t, target)
  t.equal(clients.failed, 0, 'every new client answered')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const reload = await cli(['reload', '--control', control, '--json'])
  t.equal(reload.code, 0, 'a reload is not refused')
  t.match(JSON.parse(reload.stdout), { ok: true })
})

test('--workers 2: a reload asked while the first start still boots the other slots waits for them (it bound their sockets a second time, and a socket no worker accepted on took connections)', async (t) => {
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '2'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN, slots: { 1: { bootDelay: 5000 } } })
  const target = await servingTarget(service)
  const slot1 = await service.waitForLine((l) => l.supervisor === 'generation-starting' && l.slot === 1, 15000, 'slot 1\'s first start')
  // Not before slot 1's worker has read release 1 (on a loaded machine it read release 2, and booted at once).
  await service.waitForLine((l) => l.event === 'boot-delay' && l.pid === slot1.workerPid, 15000, 'slot 1\'s worker to read its release')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const reload = await cli(['reload', '--control', control, '--json'])
  t.equal(reload.code, 0, 'the reload succeeds')
  t.ok(service.find((l) => l.supervisor === 'reload-deferred'), 'after the first start')
  await servingWorkers(service, control, 2, 2)
  const clients = await newClients(t, target)
  t.equal(clients.failed, 0, `every new client answered (${JSON.stringify(clients.errors)})`)
  t.same(Object.keys(clients.versions), ['2'], 'by release 2')
})

'use strict'
// A reload's successor boots at a lower CPU priority (lib/boot-priority.ts) and gets its priority
// back once its app has listened: a supervised worker through its scheduler autogroup (a session of
// its own), any successor's threads where the process may raise a priority again (root with
// CAP_SYS_NICE here). Where it could not be set back it is never lowered. Real processes, read
// through /proc from here: the moment the parent logs that it started a successor, every 20 ms
// while it boots, and once it serves.
const { execFileSync } = require('node:child_process')
const tap = require('tap')
const { test } = tap
const { BIN, FIXTURE_APP, Service, servingTarget, startSupervised, tempDir, waitFor, writeRelease, cli, sleep } = require('./helpers/processes')
const { priorityOf, newSessionPriority } = require('./helpers/priority')
const { mayRaiseTo } = require('../dist/lib/boot-priority')

tap.jobs = 2

const PLUGIN = { idleGrace: 200, drainTimeout: 5000, probation: 300 }
// A boot that lasts well past the first samples.
const RELEASE = { plugin: PLUGIN, slowBootMs: 600 }
const OURS = priorityOf('self')
// A supervised worker is a session of its own: its autogroup is a new one, not ours (a test run in
// the root autogroup, as under a CI's PID 1, has none of its own).
const WORKER = newSessionPriority()
const AUTOGROUPS = WORKER.autogroup !== null
// This test process's rights are the ones the service gets.
const MAY_RAISE = mayRaiseTo(OURS.threads[0])
const LOWERED_THREADS = MAY_RAISE ? [OURS.threads[0] + 10] : OURS.threads
const SETPRIV = (() => {
  if (process.getuid?.() !== 0) return undefined
  try {
    return execFileSync('sh', ['-c', 'command -v setpriv'], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
})()

const same = (a, b) => a.threads.join() === b.threads.join() && a.autogroup === b.autogroup

/**
 * `pid`'s priority every 20 ms over its first `ms` (or until it is gone), distinct values in order.
 * The parent lowers it as it spawns it, and a lowered boot gets its priority back within 1 s at
 * the latest, so this starts as soon as the parent has logged the spawn.
 */
async function whileBooting (pid, ms = 400) {
  const seen = []
  for (const end = Date.now() + ms; Date.now() < end;) {
    let now
    try {
      now = priorityOf(pid)
    } catch {
      break
    }
    if (seen.length === 0 || !same(seen[seen.length - 1], now)) seen.push(now)
    await sleep(20)
  }
  return seen
}

/** Waits until `pid` is back at `expected` (the parent sets it back as it hears of the listen); resolves with what it has then. */
async function settlesTo (pid, expected) {
  let last
  try {
    await waitFor(() => { last = priorityOf(pid); return same(last, expected) }, 5000, `pid ${pid} back at ${JSON.stringify(expected)}`)
  } catch {}
  return last
}

/** Reloads through the control socket; resolves with the new workers' pids as the supervisor logged their spawn, and their samples. */
async function supervisedReload (t, service, control, count = 1) {
  const reloaded = cli(['reload', '--control', control])
  const starting = await service.waitForLines((l) => l.supervisor === 'generation-starting' && l.trigger === 'reload', count, 20000, 'the new workers')
  const samples = await Promise.all(starting.map(({ workerPid }) => whileBooting(workerPid)))
  t.equal((await reloaded).code, 0, 'the reload succeeds')
  return starting.map(({ workerPid }, i) => ({ pid: workerPid, samples: samples[i] }))
}

test(`supervised, --boot-nice 10: a reload's worker boots ${AUTOGROUPS ? 'in an autogroup 10 steps down' : '(no autogroups here)'}${MAY_RAISE ? ', its threads 10 steps down' : ''}, and is back at ours once it serves; the first worker boots at ours`, async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, ...RELEASE })
  const { control, service } = startSupervised(t, { dir, extra: ['--probation', '300', '--boot-nice', '10'] })
  const first = await service.waitForLine((l) => l.supervisor === 'generation-starting', 20000, 'the first worker')
  t.same(await whileBooting(first.workerPid), [WORKER], 'the first worker (nobody serves beside it) boots at our priority')
  await servingTarget(service)
  writeRelease(dir, { version: 2, ...RELEASE })
  const [{ pid, samples }] = await supervisedReload(t, service, control)
  const lowered = { threads: LOWERED_THREADS, autogroup: AUTOGROUPS ? WORKER.autogroup + 10 : null }
  t.ok(samples.some((sample) => same(sample, lowered)), `while it booted: ${JSON.stringify(lowered)} (seen: ${JSON.stringify(samples)})`)
  t.same(await settlesTo(pid, WORKER), WORKER, 'serving: every thread and its autogroup are back where they started')
})

test('supervised, --boot-nice 0: a reload\'s worker boots at our priority', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, ...RELEASE })
  const { control, service } = startSupervised(t, { dir, extra: ['--probation', '300', '--boot-nice', '0'] })
  await servingTarget(service)
  writeRelease(dir, { version: 2, ...RELEASE })
  const [{ samples }] = await supervisedReload(t, service, control)
  t.same(samples, [WORKER], 'never lowered')
})

// Standalone successors share our session (and autogroup): only their threads can be lowered.
const standaloneRuns = [{ name: 'as started', command: undefined, mayRaise: MAY_RAISE }]
// Root without CAP_SYS_NICE (Docker's default): the threads could not be raised again, so they are left alone.
if (SETPRIV !== undefined && MAY_RAISE) standaloneRuns.push({ name: 'without CAP_SYS_NICE', command: [SETPRIV, '--bounding-set', '-sys_nice'], mayRaise: false })

for (const run of standaloneRuns) {
  test(`standalone ${run.name}: the successor's threads boot ${run.mayRaise ? '10 steps down (bootNice default) and are back at ours once it serves' : 'at our priority (never lowered without a way back)'}; the autogroup is left alone`, async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, ...RELEASE })
    const service = Service.start(t, { cwd: dir, ...(run.command && { command: run.command[0], args: [...run.command.slice(1), process.execPath, FIXTURE_APP] }) })
    await servingTarget(service)
    writeRelease(dir, { version: 2, ...RELEASE })
    process.kill(service.pid, 'SIGUSR2')
    const started = await service.waitForLine((l) => l.hotReload === 'reload-started', 20000, 'the successor')
    const samples = await whileBooting(started.successorPid)
    const pid = await service.generationServing(2)
    t.equal(pid, started.successorPid)
    if (run.mayRaise) {
      const lowered = { threads: [OURS.threads[0] + 10], autogroup: OURS.autogroup }
      t.ok(samples.some((sample) => same(sample, lowered)), `while it booted: its threads 10 steps down, its autogroup (ours, shared) untouched (seen: ${JSON.stringify(samples)})`)
    } else {
      t.same(samples, [OURS], 'never lowered')
    }
    t.same(await settlesTo(pid, OURS), OURS, 'serving: back at ours')
  })
}

// Without CAP_SYS_ADMIN the kernel takes one autogroup change per 100 ms, machine-wide: two workers
// that boot at once are lowered (and set back) one after the other. Without CAP_SYS_NICE either,
// their threads are left alone, and the autogroups are still set back (to 0, which needs no right).
if (SETPRIV !== undefined && WORKER.autogroup === 0) {
  test('supervised without CAP_SYS_NICE and CAP_SYS_ADMIN, 2 workers booting at once: both autogroups boot 10 steps down and are set back; the threads are left alone', async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, ...RELEASE })
    const control = `${dir}/ctl/app.sock`
    const { service } = startSupervised(t, {
      dir,
      command: SETPRIV,
      args: ['--bounding-set', '-sys_nice,-sys_admin', process.execPath, BIN, 'start', '--control', control, '--ready-timeout', '10000', '--drain-timeout', '5000',
        '--probation', '300', '--workers', '2', '--boot-concurrency', '2', '--boot-nice', '10', '--', process.execPath, FIXTURE_APP]
    })
    await servingTarget(service)
    writeRelease(dir, { version: 2, ...RELEASE })
    const workers = await supervisedReload(t, service, control, 2)
    const lowered = { threads: WORKER.threads, autogroup: 10 }
    for (const { pid, samples } of workers) {
      t.ok(samples.some((sample) => same(sample, lowered)), `pid ${pid} booted in an autogroup 10 steps down, its threads at ours (seen: ${JSON.stringify(samples)})`)
      t.same(await settlesTo(pid, WORKER), WORKER, `pid ${pid} serves where it started`)
    }
  })
}

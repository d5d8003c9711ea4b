'use strict'
// A reload signal that comes before the generation serves (the app still boots: a slow plugin runs
// after the hot-reload plugin registered) must not end the process: the plugin takes its signals at
// registration, remembers the request, and reloads once (however many signals came) as soon as the
// generation serves.
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const tap = require('tap')
const { test } = tap
const { Service, startSupervised, tempDir, writeRelease, waitUntilGone, sleep, isAlive } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')

// Three tests at a time: each waits mostly on a slow boot, a readyTimeout-free reload and a drain
// (10 clients of load at most), so their waits overlap. Each has its own service, port and load.
tap.jobs = 3

const PLUGIN = { idleGrace: 300, drainTimeout: 10000, readyTimeout: 20000 }
// Long enough that the signals the test sends once the slow boot began land in it, on a loaded machine too.
const SLOW_BOOT_MS = 1500
const REPO = path.resolve(__dirname, '..')

/** Starts a service whose generation 1 boots slowly; resolves once its slow boot has begun (the plugin registered). */
async function slowBootingService (t, release = {}) {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, slowBootMs: SLOW_BOOT_MS, ...release })
  const service = Service.start(t, { cwd: dir })
  await service.waitForLine((l) => l.event === 'slow-boot' && l.pid === service.pid, 20000, 'generation 1 to begin its slow boot')
  return { dir, service }
}

/** Sends `count` SIGUSR2 to pid, spaced so that the kernel does not merge them. */
async function signal (pid, count) {
  for (let i = 0; i < count; i++) {
    process.kill(pid, 'SIGUSR2')
    await sleep(40)
  }
}

/** Once a generation serves after the signals: one reload to `version`, under load, nothing failed. */
async function reloadsOnceUnderLoad (t, service, version, oldPid) {
  const url = await service.listening()
  const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10 })
  const next = await service.generationServing(version, 30000)
  await waitUntilGone(oldPid)
  // Long enough for a second reload (a successor's boot takes SLOW_BOOT_MS) to have shown itself.
  await sleep(SLOW_BOOT_MS + 1000)
  const stats = await load.stop()
  t.comment(JSON.stringify(stats))
  t.equal(stats.failed, 0, 'no request failed')
  t.same(stats.errors, {}, 'no client errors')
  t.equal(stats.non2xx, 0, 'no non-2xx response')
  t.ok(stats.versions[version] > 0, `version ${version} served`)
  t.same(service.alive(), [next], 'only the new generation is left')
  return next
}

test('SIGUSR2 while generation 1 still boots: it survives, serves, then reloads once', async (t) => {
  const { dir, service } = await slowBootingService(t)
  writeRelease(dir, { version: 2, plugin: PLUGIN, slowBootMs: SLOW_BOOT_MS })
  await signal(service.pid, 1)
  const first = await service.generationServing(1)
  t.equal(first, service.pid, 'generation 1 survived the signal and serves')
  await reloadsOnceUnderLoad(t, service, 2, service.pid)
  t.equal((await service.exit).code, 0, 'generation 1 exited 0 after its drain')
  const deferred = service.filter((l) => l.hotReload === 'reload-deferred')
  t.same(deferred.map((l) => [l.pid, l.generation]), [[service.pid, 1]], 'the reload was deferred once, by generation 1')
  const signalAt = service.lines.findIndex((l) => l.hotReload === 'signal-received')
  const servingAt = service.lines.findIndex((l) => l.hotReloadEvent === 'serving' && l.generation === 1)
  t.ok(signalAt !== -1 && signalAt < servingAt, 'the signal came before generation 1 served')
  t.equal(service.events('reloading').length, 1, 'exactly one successor was spawned')
  t.equal(service.events('reloaded').length, 1, 'and it was committed')
})

test('several SIGUSR2 before generation 1 serves: exactly one reload', async (t) => {
  const { dir, service } = await slowBootingService(t)
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  await signal(service.pid, 5)
  await service.generationServing(1)
  await reloadsOnceUnderLoad(t, service, 2, service.pid)
  t.equal((await service.exit).code, 0, 'generation 1 exited 0 after its drain')
  const received = service.filter((l) => l.hotReload === 'signal-received' && l.pid === service.pid).length
  t.ok(received >= 2, `several signals arrived before it served (${received})`)
  t.equal(service.filter((l) => l.hotReload === 'reload-deferred').length, 1, 'one reload was deferred')
  t.equal(service.filter((l) => l.hotReload === 'reload-coalesced' && l.deferred === true).length, received - 1, 'every other signal joined it, and was logged')
  t.equal(service.events('reloading').length, 1, 'exactly one successor was spawned')
  t.notOk(service.find((l) => l.hotReloadEvent === 'serving' && l.generation === 3), 'no second reload')
})

test('close-with-grace installed after the plugin registered, before listen (as fastify-cli does): SIGUSR2 in the boot neither closes the app nor is lost', async (t) => {
  const { dir, service } = await slowBootingService(t, { closeWithGraceInBoot: true })
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  await signal(service.pid, 1)
  const first = await service.generationServing(1)
  t.equal(first, service.pid, 'generation 1 survived the signal and serves')
  t.notOk(service.find((l) => l.hotReloadEvent === 'drained' && l.generation === 1 && l.reason === 'shutdown'), 'it was not shut down')
  const setAside = service.filter((l) => l.hotReload === 'signal-listeners-set-aside' && l.signal === 'SIGUSR2' && l.pid === service.pid)
  t.ok(setAside.length >= 1, "close-with-grace's SIGUSR2 listener was set aside")
  await reloadsOnceUnderLoad(t, service, 2, service.pid)
  t.equal((await service.exit).code, 0, 'generation 1 exited 0 after its drain')
  t.equal(service.events('reloading').length, 1, 'exactly one successor was spawned')
})

test('SIGUSR2 to a successor while it boots: it is not killed; once it serves it reloads once', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  await service.generationServing(1)
  const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10 })
  await sleep(200)
  writeRelease(dir, { version: 2, plugin: PLUGIN, slowBootMs: SLOW_BOOT_MS })
  process.kill(service.pid, 'SIGUSR2')
  const started = await service.waitForEvent('reloading', (l) => l.generation === 2)
  const second = started.successorPid
  await service.waitForLine((l) => l.event === 'slow-boot' && l.pid === second, 20000, 'generation 2 to begin its slow boot')
  writeRelease(dir, { version: 3, plugin: PLUGIN })
  await signal(second, 3)
  t.equal(await service.generationServing(2, 30000), second, 'generation 2 survived the signals and serves')
  const third = await service.generationServing(3, 30000)
  await waitUntilGone(service.pid)
  await waitUntilGone(second)
  await sleep(SLOW_BOOT_MS)
  const stats = await load.stop()
  t.comment(JSON.stringify(stats))
  t.equal(stats.failed, 0, 'no request failed')
  t.equal(stats.non2xx, 0, 'no non-2xx response')
  t.ok(stats.versions[3] > 0, 'version 3 served')
  t.same(service.alive(), [third], 'only generation 3 is left')
  t.equal((await service.exit).code, 0, 'generation 1 exited 0')
  t.same(service.filter((l) => l.hotReload === 'reload-deferred').map((l) => [l.pid, l.generation]), [[second, 2]], 'generation 2 deferred the reload')
  t.same(service.events('reloading').map((l) => l.generation), [2, 3], 'one reload each: generation 1 to 2, then 2 to 3')
  t.notOk(service.find((l) => l.hotReload === 'reload-failed'), 'no reload failed')
})

test('supervised: SIGUSR2 to a worker while it boots: it is not killed; once it serves the supervisor reloads once', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, slowBootMs: SLOW_BOOT_MS })
  const { service } = startSupervised(t, { dir })
  const booting = await service.waitForLine((l) => l.event === 'slow-boot' && l.pid !== service.pid, 20000, 'the first worker to begin its slow boot')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  await signal(booting.pid, 3)
  const url = await service.listening()
  const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10 })
  const first = await service.waitForLine((l) => l.supervisor === 'generation-serving' && l.generation === 1, 30000, 'generation 1 to serve')
  t.equal(first.workerPid, booting.pid, 'the signalled worker survived and serves')
  const second = await service.waitForLine((l) => l.supervisor === 'generation-serving' && l.generation === 2, 30000, 'generation 2 to serve')
  await waitUntilGone(booting.pid)
  await sleep(1000)
  const stats = await load.stop()
  t.comment(JSON.stringify(stats))
  t.equal(stats.failed, 0, 'no request failed')
  t.equal(stats.non2xx, 0, 'no non-2xx response')
  t.ok(stats.versions[2] > 0, 'version 2 served')
  t.same(service.filter((l) => l.hotReload === 'reload-deferred').map((l) => l.pid), [booting.pid], 'the worker deferred the reload')
  t.equal(service.filter((l) => l.hotReload === 'reload-delegated' && l.pid === booting.pid).length, 1, 'and asked the supervisor once it served')
  t.equal(service.filter((l) => l.supervisor === 'generation-starting' && l.trigger === 'reload').length, 1, 'one reload')
  t.notOk(service.find((l) => l.supervisor === 'worker-crashed'), 'no worker crashed')
  t.same(service.alive().sort(), [service.pid, second.workerPid].sort(), 'the supervisor and the new worker are left')
})

test('supervised: SIGUSR2 to the supervisor twice while its first generation boots: one reload once it serves', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, slowBootMs: SLOW_BOOT_MS })
  const { service } = startSupervised(t, { dir })
  await service.waitForLine((l) => l.event === 'slow-boot' && l.pid !== service.pid, 20000, 'the first worker to begin its slow boot')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  process.kill(service.pid, 'SIGUSR2')
  await sleep(300)
  process.kill(service.pid, 'SIGUSR2')
  await service.waitForLine((l) => l.supervisor === 'generation-serving' && l.generation === 2, 30000, 'generation 2 to serve')
  await sleep(SLOW_BOOT_MS + 1000)
  t.equal(service.filter((l) => l.supervisor === 'reload-deferred').length, 1, 'the first signal deferred a reload')
  t.equal(service.filter((l) => l.supervisor === 'reload-coalesced').length, 1, 'the second joined it')
  t.same(service.filter((l) => l.supervisor === 'generation-starting' && l.trigger === 'reload').map((l) => l.generation), [2], 'one reload: generation 2, no generation 3')
})

test('keepPid: a reload signal during the boot, before the process becomes the supervisor, does not end it; the first generation runs the code on disk then', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, slowBootMs: SLOW_BOOT_MS })
  const service = Service.start(t, { cwd: dir, env: { FASTIFY_HOT_RELOAD_KEEP_PID: '1' } })
  await service.waitForLine((l) => l.event === 'slow-boot' && l.pid === service.pid, 20000, 'the app to begin its slow boot')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  await signal(service.pid, 2)
  const url = await service.listening()
  if (typeof process.execve === 'function') {
    const serving = await service.waitForLine((l) => l.supervisor === 'generation-serving' && l.generation === 1, 30000, 'the supervisor\'s first generation to serve')
    t.equal(serving.pid, service.pid, 'the pid that was signalled is the supervisor')
    t.match(service.find((l) => l.hotReload === 'becoming-supervisor'), { pid: service.pid, deferredReload: true }, 'it says the signal is answered by the fresh start')
    const answer = await fetch(`http://${url.host}/`).then((res) => res.json())
    t.equal(answer.version, 2, 'the first generation runs the release on disk after the signal')
    await sleep(SLOW_BOOT_MS + 500)
    t.notOk(service.find((l) => l.supervisor === 'generation-starting' && l.trigger === 'reload'), 'no reload on top of it')
    const started = service.find((l) => l.supervisor === 'started')
    process.kill(service.pid, 'SIGTERM')
    t.equal((await service.exit).code, 0, 'SIGTERM stops it')
    t.notOk(fs.existsSync(started.controlPath), 'its control socket is gone')
  } else {
    // Node without process.execve: standalone, and the deferred reload runs once the app serves.
    await service.generationServing(2, 30000)
    t.equal(service.filter((l) => l.hotReload === 'reload-deferred').length, 1, 'the reload was deferred, then ran')
  }
})

/** Runs the inject-only fixture; resolves with its exit and its JSON lines. */
function injectOnly (t, args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO, 'test/fixtures/inject-only.js'), ...args], {
      env: { ...process.env, FHR_PLUGIN: REPO, FASTIFY_HOT_RELOAD_KEEP_PID: '0' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const deadline = setTimeout(() => child.kill('SIGKILL'), 20000)
    t.teardown(() => { clearTimeout(deadline); if (isAlive(child.pid)) child.kill('SIGKILL') })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (chunk) => { out += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk) => { out += chunk })
    child.once('close', (code, signal) => {
      clearTimeout(deadline)
      const lines = out.split('\n').filter(Boolean).map((text) => { try { return JSON.parse(text) } catch { return { raw: text } } })
      resolve({ code, signal, lines })
    })
  })
}

test('an app that never listens (inject): a reload signal waits, the handlers go at close, and nothing keeps the process alive', async (t) => {
  const closed = await injectOnly(t, ['close'])
  t.comment(JSON.stringify(closed))
  t.same([closed.code, closed.signal], [0, null], 'the process was not killed by the signal and ended by itself')
  const find = (lines, event) => lines.find((l) => l.event === event)
  t.equal(find(closed.lines, 'registered')?.added, 1, 'the plugin took SIGUSR2 at registration')
  t.match(find(closed.lines, 'survived'), { status: 200, state: 'starting' }, 'the app still answers inject()')
  t.ok(closed.lines.find((l) => l.hotReload === 'reload-deferred'), 'the reload was deferred')
  t.equal(find(closed.lines, 'closed')?.asBefore, true, 'SIGUSR2\'s listeners are as before the plugin once the app closed')
  t.ok(closed.lines.find((l) => l.hotReload === 'reload-ignored' && l.deferred === true), 'the deferred reload was dropped at close, and logged')
  t.notOk(closed.lines.find((l) => l.hotReload === 'reload-started'), 'no successor was spawned')

  const open = await injectOnly(t, [])
  t.same([open.code, open.signal], [0, null], 'an app left open ends by itself too')
  t.ok(find(open.lines, 'survived'), 'after the signal')
  t.notOk(open.lines.find((l) => l.hotReload === 'reload-started'), 'no successor was spawned')
})

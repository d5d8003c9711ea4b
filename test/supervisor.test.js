'use strict'
// The stable-PID supervisor: real processes, real signals, the reload command's answer. As PID 1
// under load: supervisor-pid1.test.js; how it stops: supervisor-stop.test.js.
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const {
  Service, BIN, FIXTURE_APP, cli, startSupervised, servingTarget, tempDir, installedCopy, writeRelease, waitFor, waitUntilGone, isAlive, sleep, notifyReceiver
} = require('./helpers/processes')
const { startLoad } = require('./helpers/load')
const { requestJson } = require('./helpers/http')

// Two tests at a time: most wait on boots, readyTimeout, restarts and back-offs, so their waits
// overlap. Each has its own supervisor, port and load.
tap.jobs = 2

const PLUGIN = { idleGrace: 300 }

const get = (target, route) => requestJson(target, route)
const post = (target, route) => requestJson(target, route, { method: 'POST' })

test('once reload has answered, every new connection reaches the new generation: the old workers no longer accept', async (t) => {
  // The supervisor answers only after the workers told to drain said they stopped accepting. Before,
  // a connection made right after the answer (a deploy script's check) could still reach an old
  // worker that had yet to read its drain order, and get the old code.
  const { dir, control, service } = startSupervised(t, { extra: ['--workers', '2'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  // New connections all the time, so that the old workers are busy accepting when the reload ends.
  const load = startLoad(t, target, { connections: 4, keepAlive: false })
  const stale = []
  for (let version = 2; version <= 5; version++) {
    writeRelease(dir, { version, plugin: PLUGIN })
    const reload = await cli(['reload', '--control', control])
    t.equal(reload.code, 0, `reload to ${version}`)
    const answers = await Promise.all(Array.from({ length: 20 }, () => get(target)))
    for (const { body } of answers) if (body.version !== version) stale.push({ expected: version, got: body.version, pid: body.pid })
  }
  const stats = await load.stop()
  t.same(stale, [], 'no connection made after the answer reached an old worker')
  t.equal(stats.failed, 0, 'no request of the load failed')
})

test('reload exits 0 on a good release and non-zero on broken ones; the old generation keeps serving', async (t) => {
  // The release that never becomes ready fails at --ready-timeout: 5 s instead of the helper's 10 s
  // (still several boots of the good releases on a loaded machine).
  const { dir, control, service } = startSupervised(t, { extra: ['--ready-timeout', '5000'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const load = startLoad(t, target, { connections: 10, keepAlive: false })
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const good = await cli(['reload', '--control', control])
  t.equal(good.code, 0)
  t.match(good.stdout, /reloaded: generation 2 \(pid \d+\) serving after \d+ ms/)
  // A module the release needs is not installed: it ends before the app loads the plugin.
  fs.writeFileSync(path.join(dir, 'needs.js'), "require('a-module-not-installed')\n")
  writeRelease(dir, { version: 3, requireFirst: 'needs.js' })
  const broken = await cli(['reload', '--control', control, '--json'])
  t.equal(broken.code, 1, 'a release that cannot start: exit 1')
  t.match(JSON.parse(broken.stdout), { ok: false, generation: 2, error: { code: 'HOT_RELOAD_SUCCESSOR_EXITED', message: /before it was ready: Error: Cannot find module 'a-module-not-installed'$/ } }, 'with what ended it')
  // A rejection left unhandled at boot ends the worker at the end of that turn: never taken for ready first.
  writeRelease(dir, { version: 3, plugin: PLUGIN, rejectAtBoot: true })
  const rejected = await cli(['reload', '--control', control, '--json'])
  t.equal(rejected.code, 1, 'a release that leaves a rejection unhandled at boot: exit 1')
  t.match(JSON.parse(rejected.stdout), { ok: false, generation: 2, error: { code: 'HOT_RELOAD_SUCCESSOR_EXITED', message: /before it was ready: Error: release 3 rejects at boot$/ } }, 'with what ended it')
  writeRelease(dir, { version: 4, notReady: true, plugin: PLUGIN })
  const hanging = await cli(['reload', '--control', control])
  t.equal(hanging.code, 1, 'a release that never becomes ready: exit 1')
  t.match(hanging.stderr, /reload failed: .*readyTimeout.*generation 2 \(pid \d+\) keeps serving/)
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed')
  t.equal(stats.non2xx, 0)
  t.same(Object.keys(stats.versions).sort(), ['1', '2'], 'only the good releases answered')
  const status = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.equal(status.generation, 2)
  t.equal(status.lastReload.ok, false)
  t.equal(status.workers.length, 1, 'one worker left')
  // A worker says its generation on every line (its logger's bindings): our own lines do not say it again.
  await service.waitForLine((l) => l.hotReload === 'drained', 10000, 'the first worker\'s drain')
  const ours = service.filter((l) => typeof l.hotReload === 'string' && typeof l.slot === 'number')
  t.ok(ours.some((l) => l.hotReload === 'serving') && ours.some((l) => l.hotReload === 'drained'), 'its serving and drained lines among them')
  t.same(ours.filter((l) => l.text.split('"generation":').length !== 2).map((l) => l.text), [], 'each names its generation once')
  // Every worker's drain is bound by --drain-timeout 5000 (the plugin asks 30000): said by the first worker only.
  const firstWorker = service.find((l) => l.hotReload === 'serving' && l.generation === 1)?.pid
  t.same(service.filter((l) => l.hotReload === 'drain-limited').map((l) => l.pid), [firstWorker], 'the bound is said once, by the first worker')
})

/** One worker serving release 1, restarted 300 ms after it ends; `before` is an answer from it. */
async function oneServingWorker (t, extra = []) {
  const { dir, control, service } = startSupervised(t, { extra: ['--restart-delay', '300', ...extra] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  // Once it serves, the supervisor holds a copy of the socket the first worker bound.
  await service.generationServing(1)
  return { dir, control, service, target, before: await get(target) }
}

test('a worker killed with SIGKILL is restarted; requests that arrive meanwhile wait and succeed', async (t) => {
  const { dir, control, service, target, before } = await oneServingWorker(t)
  process.kill(before.body.pid, 'SIGKILL')
  await waitUntilGone(before.body.pid)
  const started = Date.now()
  const answers = await Promise.all(Array.from({ length: 5 }, () => get(target)))
  t.ok(answers.every((a) => a.status === 200), 'every request that arrived while no worker ran succeeded')
  t.ok(answers.every((a) => a.body.pid !== before.body.pid), 'served by the restarted worker')
  t.ok(Date.now() - started >= 200, 'they waited for the restart')
  const status = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.equal(status.restarts, 1)
  t.same([status.generation, status.workers.map((w) => w.generation)], [1, [1]], 'a crash restart is not a reload: generation 1 serves again (as a slot restart with --workers 2)')
  t.ok(service.find((l) => l.supervisor === 'worker-crashed' && l.signal === 'SIGKILL' && l.workerPid === before.body.pid), 'the crash is logged')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const reload = JSON.parse((await cli(['reload', '--control', control, '--json'])).stdout)
  t.match(reload, { ok: true, generation: 2 }, 'the next reload brings generation 2')
})

test('the package upgraded under a running supervisor: status and the serving line say which version each runs', async (t) => {
  const { version } = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'))
  const { dir, control, service } = await oneServingWorker(t)
  const before = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.match(before, { version, workers: [{ generation: 1, version }] }, 'one version everywhere')
  const beforeText = (await cli(['status', '--control', control])).stdout
  t.match(beforeText, `supervisor pid ${before.pid} (fastify-hot-reload ${version})`)
  t.match(beforeText, /generation 1 slot 0: pid \d+ serving, up \d+ s\n/, 'a worker on the supervisor\'s version is not marked')
  // The next release brings another version of the package (npm install fastify-hot-reload@next).
  writeRelease(dir, { version: 2, plugin: PLUGIN, pluginFrom: installedCopy(t, { version: '99.0.0-test' }) })
  t.match(JSON.parse((await cli(['reload', '--control', control, '--json'])).stdout), { ok: true, generation: 2 })
  const serving = await service.waitForLine((l) => l.supervisor === 'generation-serving' && l.generation === 2, 10000, 'generation 2 serving')
  t.equal(serving.workerVersion, '99.0.0-test', 'the serving line names the workers\' version')
  t.notOk(service.find((l) => l.supervisor === 'generation-serving' && l.generation === 1).workerVersion, 'and not when it is the supervisor\'s own')
  const after = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.equal(after.version, version, 'the supervisor keeps its own version')
  t.equal(after.workers.find((w) => w.generation === 2)?.version, '99.0.0-test', 'the new worker runs the new one')
  t.match((await cli(['status', '--control', control])).stdout, /generation 2 slot 0: pid \d+ serving, up \d+ s, fastify-hot-reload 99\.0\.0-test\n/)
  t.equal((await cli(['--version'])).stdout, `${version}\n`, '--version still prints the package\'s')
})

test('a worker told to drain whose event loop is stuck is killed once it is overdue, not left running for ever', async (t) => {
  const DRAIN_TIMEOUT = 1000
  const { dir, control, service } = startSupervised(t, { extra: ['--drain-timeout', String(DRAIN_TIMEOUT), '--probation', '0'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN, blockWhenDraining: true })
  const target = await servingTarget(service)
  await service.generationServing(1)
  const stuck = (await get(target)).body.pid
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const reloadedAt = Date.now()
  t.match(JSON.parse((await cli(['reload', '--control', control, '--json'])).stdout), { ok: true, generation: 2 })
  t.equal((await get(target)).body.version, 2, 'generation 2 serves')
  // Its own bounds (drainTimeout, then the onClose grace of 5 s) and a margin: about 8 s.
  const killed = await service.waitForLine((l) => l.supervisor === 'worker-killed' && l.workerPid === stuck, 20000, 'the stuck worker to be killed')
  t.ok(Date.now() - reloadedAt >= DRAIN_TIMEOUT + 5000, `not before its own bounds ran out (${Date.now() - reloadedAt} ms)`)
  t.equal(killed.generation, 1)
  await waitUntilGone(stuck, 5000)
  t.notOk(isAlive(stuck), 'it is gone')
  t.equal((await get(target)).body.version, 2, 'generation 2 still serves')
})

test('a worker sent SIGTERM itself drains and exits 0; another takes its slot at once, not once it has drained; logged as a stop, not as a crash', async (t) => {
  // A request in flight keeps it draining for a while, long enough for a replacement to boot on a busy machine.
  const { control, service, target, before } = await oneServingWorker(t, ['--drain-timeout', '15000'])
  let slowDone = false
  const slow = get(target, '/slow?ms=6000').finally(() => { slowDone = true })
  await sleep(300)
  process.kill(before.body.pid, 'SIGTERM')
  await waitFor(async () => {
    const status = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
    return status.workers.some((w) => w.pid === before.body.pid && w.state === 'draining')
  }, 5000, 'status to show the worker draining')
  t.pass('status shows it draining meanwhile')
  // A new connection while it drains: the stopped worker no longer accepts, and its replacement answers.
  const meanwhile = await get(target)
  t.equal(meanwhile.status, 200, 'a request that arrives while it drains is served')
  t.not(meanwhile.body.pid, before.body.pid, 'by a worker started in its place')
  t.notOk(slowDone, 'before the stopped worker finished its request in flight')
  t.ok(isAlive(before.body.pid), 'while the stopped worker still drains')
  t.match(await slow, { status: 200, body: { pid: before.body.pid } }, 'its request in flight finished')
  await waitUntilGone(before.body.pid)
  const after = await get(target)
  t.equal(after.status, 200, 'served on')
  t.equal(after.body.pid, meanwhile.body.pid, 'by the same replacement')
  // Logged at its exit, which the replacement's answer may come before.
  const stopped = await service.waitForLine((l) => l.supervisor === 'worker-stopped' && l.workerPid === before.body.pid, 5000, 'the stop to be logged')
  t.ok(stopped, 'the stop is logged')
  t.equal(stopped?.code, 0, 'with its exit code')
  t.ok(stopped?.level < 50, 'below error level')
  t.notOk(service.find((l) => l.supervisor === 'worker-crashed'), 'and not as a crash')
  const status = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.same(status.workers.map((w) => w.state), ['serving'], 'one worker serves')
  t.equal(status.restarts, 0, 'a stop is not counted as a crash restart')
})

test('a worker sent SIGTERM itself with nothing to drain, gone at once: its slot gets another worker without the crash back-off', async (t) => {
  // A restart after a crash would wait out this delay.
  const { control, service, target, before } = await oneServingWorker(t, ['--restart-delay', '20000'])
  process.kill(before.body.pid, 'SIGTERM')
  await waitUntilGone(before.body.pid)
  const after = await get(target)
  t.equal(after.status, 200, 'a request after it is gone is served')
  t.not(after.body.pid, before.body.pid, 'by another worker')
  t.ok(await service.waitForLine((l) => l.supervisor === 'worker-stopped' && l.workerPid === before.body.pid, 5000, 'the stop to be logged'), 'logged as a stop')
  t.notOk(service.find((l) => l.supervisor === 'restart-scheduled'), 'no restart was scheduled with the back-off')
  const status = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.equal(status.restarts, 0, 'not counted as a crash restart')
})

test('the serving worker dies while a reload boots, and the reload fails: the slot is restarted, and requests that waited succeed', async (t) => {
  // As when a container's memory limit kills both processes of a reload.
  const { dir, control, service } = startSupervised(t, { extra: ['--restart-delay', '300'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  await service.generationServing(1)
  const before = await get(target)
  writeRelease(dir, { version: 2, slowBootMs: 1500, plugin: PLUGIN })
  const reload = cli(['reload', '--control', control, '--json'])
  const successor = await waitFor(() => service.find((l) => l.supervisor === 'generation-starting' && l.generation === 2), 10000, 'the successor to start')
  process.kill(before.body.pid, 'SIGKILL')
  await waitUntilGone(before.body.pid)
  process.kill(successor.workerPid, 'SIGKILL')
  const answer = await reload
  t.equal(answer.code, 1, 'the reload failed')
  t.match(JSON.parse(answer.stdout), { ok: false, error: { code: 'HOT_RELOAD_SUCCESSOR_EXITED' } })
  // Requests that came while no worker ran wait in the accept queue for the restarted one.
  const answers = await Promise.all(Array.from({ length: 5 }, () => get(target)))
  t.ok(answers.every((a) => a.status === 200), 'every request succeeded')
  t.ok(answers.every((a) => a.body.pid !== before.body.pid && a.body.pid !== successor.workerPid), 'served by a restarted worker')
  t.ok(service.find((l) => l.supervisor === 'restart-scheduled'), 'the restart is logged')
  const status = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.equal(status.state, 'serving')
  t.equal(status.workers.length, 1, 'one worker serves')
})

test('reload --wait-probation: exit 0 once a good release has served its probation; exit 1 (HOT_RELOAD_ROLLED_BACK) for one that crashes within it, naming what serves again', async (t) => {
  const PROBATION = 1500
  const { dir, control, service } = startSupervised(t, { extra: ['--probation', String(PROBATION)] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  await service.generationServing(1)
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const startedAt = Date.now()
  const good = await cli(['reload', '--control', control, '--wait-probation', '--json'])
  t.equal(good.code, 0, 'a good release: exit 0')
  t.match(JSON.parse(good.stdout), { ok: true, generation: 2 })
  t.ok(Date.now() - startedAt >= PROBATION, 'after its probation')
  const serving = await get(target)
  // Ready, then dead within the probation: the plain answer says ok; the verdict does not.
  writeRelease(dir, { version: 3, plugin: PLUGIN, exitAfterServingMs: 300 })
  const bad = await cli(['reload', '--control', control, '--wait-probation', '--json'])
  t.equal(bad.code, 1, 'a release that crashes within its probation: exit 1')
  t.match(JSON.parse(bad.stdout), { ok: false, generation: 2, pid: serving.body.pid, error: { code: 'HOT_RELOAD_ROLLED_BACK', message: /generation 3 was rolled back/ } }, 'naming the generation that serves again')
  t.match((await get(target)).body, { version: 2, pid: serving.body.pid }, 'which answers')
})

test('a reload asked while one boots runs after it (a second deploy right after the first): the newest release serves, each caller gets its own reload\'s answer', async (t) => {
  const { dir, control, service } = startSupervised(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const firstPid = await service.generationServing(1)
  writeRelease(dir, { version: 2, slowBootMs: 3000, plugin: PLUGIN })
  const first = cli(['reload', '--control', control, '--json'])
  await waitFor(() => service.find((l) => l.event === 'slow-boot' && l.pid !== firstPid), 10000, 'version 2 to boot')
  // Version 2's worker has read its code: version 3 lands now.
  writeRelease(dir, { version: 3, plugin: PLUGIN })
  const [second, third] = await Promise.all([cli(['reload', '--control', control, '--json']), cli(['reload', '--control', control, '--json'])])
  const answers = [await first, second, third].map((a) => JSON.parse(a.stdout))
  t.match(answers[0], { ok: true, generation: 2 }, 'the first reload brought version 2')
  t.match(answers[1], { ok: true, generation: 3 }, 'the one asked meanwhile ran after it')
  t.same(answers[2], answers[1], 'a third asked meanwhile joined the second')
  t.equal((await get(target)).body.version, 3, 'the newest release serves')
  t.equal(service.filter((l) => l.supervisor === 'generation-starting' && l.trigger === 'reload').length, 2, 'two reloads ran')
})

test('systemd socket activation: the supervisor serves on the activated socket and reloads with 0 failed', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const port = await new Promise((resolve) => {
    const probe = require('node:net').createServer().listen(0, '127.0.0.1', () => { const p = probe.address().port; probe.close(() => resolve(p)) })
  })
  const control = path.join(dir, 'ctl', 'app.sock')
  const service = Service.start(t, {
    cwd: dir,
    env: { PORT: String(port) },
    command: 'systemd-socket-activate',
    args: ['-l', `127.0.0.1:${port}`, process.execPath, BIN, 'start', '--control', control, '--', process.execPath, FIXTURE_APP]
  })
  const target = { host: '127.0.0.1', port }
  await service.waitForLine((l) => /Listening on/.test(l.raw || ''), 10000, 'systemd-socket-activate to listen')
  // The socket exists before anything runs: the first connection starts the service.
  const first = await get(target)
  t.equal(first.status, 200)
  await service.waitForLine((l) => (l.hotReloadEvent === 'serving' && l.generation === 1))
  t.ok(service.find((l) => l.hotReload === 'adopted-socket' && l.address.startsWith('127.0.0.1:')), 'the worker adopted the activated socket')
  const load = startLoad(t, target, { connections: 10, keepAlive: true })
  for (const version of [2, 3]) {
    writeRelease(dir, { version, plugin: PLUGIN })
    t.equal((await cli(['reload', '--control', control])).code, 0)
  }
  await sleep(300)
  const stats = await load.stop()
  t.equal(stats.failed, 0)
  t.ok(stats.versions[3] > 0)
  process.kill(service.pid, 'SIGTERM')
  t.same(await service.exit, { code: 0, signal: null })
})

test('start -- node --import tsx app.ts: the loader is not taken for the app; it serves and reloads, and its control socket is named after the app', async (t) => {
  const dir = tempDir(t)
  // TypeScript syntax: only tsx's loader runs this; `--import tsx` resolves from the app's directory.
  fs.writeFileSync(path.join(dir, 'app.ts'), `const fixture: string = ${JSON.stringify(FIXTURE_APP)}\nrequire(fixture)\n`)
  fs.symlinkSync(path.join(__dirname, '..', 'node_modules'), path.join(dir, 'node_modules'))
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  // The default control socket goes under XDG_RUNTIME_DIR: here, the test's own directory.
  const env = { XDG_RUNTIME_DIR: dir }
  const service = Service.start(t, { cwd: dir, env, args: [BIN, 'start', '--', process.execPath, '--import', 'tsx', 'app.ts'] })
  const target = await servingTarget(service)
  t.ok(fs.existsSync(path.join(dir, 'fastify-hot-reload', 'app.sock')), 'control socket app.sock')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const reload = await cli(['reload', '--name', 'app'], { env })
  t.equal(reload.code, 0, 'reload --name app reaches it')
  t.equal((await get(target)).body.version, 2, 'release 2 serves')
})

test('reload and status without --name: the one service with a socket in the default place is meant; with none or several there, exit 2 naming what to give', async (t) => {
  const dir = tempDir(t)
  // The default control sockets go under XDG_RUNTIME_DIR: here, the test's own directory.
  const env = { XDG_RUNTIME_DIR: dir }
  const sockets = path.join(dir, 'fastify-hot-reload')
  const none = await cli(['reload'], { env })
  t.equal(none.code, 2, 'no service: a usage error')
  t.ok(none.stderr.includes(sockets), 'naming where it looked')
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const service = Service.start(t, { cwd: dir, env, args: [BIN, 'start', '--', process.execPath, FIXTURE_APP] })
  const target = await servingTarget(service)
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const reload = await cli(['reload', '--json'], { env })
  t.equal(reload.code, 0, 'one service: reload reaches it')
  t.equal((await get(target)).body.version, 2, 'release 2 serves')
  const status = await cli(['status', '--json'], { env })
  t.match(JSON.parse(status.stdout), { pid: service.pid, generation: 2 }, 'status reaches it too')
  const other = tempDir(t)
  writeRelease(other, { version: 1, plugin: PLUGIN })
  const api = Service.start(t, { cwd: other, env, args: [BIN, 'start', '--name', 'api', '--', process.execPath, FIXTURE_APP] })
  await servingTarget(api)
  writeRelease(dir, { version: 3, plugin: PLUGIN })
  const several = await cli(['reload'], { env })
  t.equal(several.code, 2, 'two services: a usage error')
  t.ok(several.stderr.includes('--name api') && several.stderr.includes('--name app'), `naming both (${several.stderr.trim()})`)
  t.equal((await get(target)).body.version, 2, 'neither was reloaded: release 2 still serves, not the 3 on disk')
})

test('wrong arguments, a missing app file, a control socket that is not ours: clear errors', async (t) => {
  const dir = tempDir(t)
  const missing = await cli(['start', path.join(dir, 'nope.js')])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /app file not found: .*nope\.js/)
  const typo = await cli(['start', '--ready-timout', '5000', FIXTURE_APP])
  t.equal(typo.code, 2)
  t.match(typo.stderr, /unknown option --ready-timout; did you mean --ready-timeout\? \(options: --workers, /)
  t.notMatch(typo.stderr, /from-plugin|after '--'/, 'no internal option, no advice to hand it to the app')
  const nothing = await cli([])
  t.equal(nothing.code, 2, 'no command: usage, exit 2')
  t.match(nothing.stderr, /Usage: fastify-hot-reload <command>/)
  const badTimeout = await cli(['start', '--ready-timeout', 'soon', '--', process.execPath, FIXTURE_APP])
  t.equal(badTimeout.code, 2)
  t.match(badTimeout.stderr, /--ready-timeout must be a whole number of milliseconds/)
  const badSignal = await cli(['start', '--reload-signal', 'SIGKILL', FIXTURE_APP])
  t.match(badSignal.stderr, /--reload-signal must be one of/)
  const badPidFile = await cli(['start', '--pid-file', path.join(dir, 'missing', 'app.pid'), FIXTURE_APP])
  t.equal(badPidFile.code, 2)
  t.match(badPidFile.stderr, /--pid-file: directory .*missing is missing \(ENOENT\); expected a path in a directory we can write/)
  const badDrain = await cli(['start', '--drain-timeout=-1', FIXTURE_APP])
  t.match(badDrain.stderr, /--drain-timeout must be a whole number of milliseconds/)
  const badBackoff = await cli(['start', '--restart-delay', '0', FIXTURE_APP])
  t.match(badBackoff.stderr, /--restart-delay must be a whole number of milliseconds/)
  const badProbation = await cli(['start', '--probation', '2s', FIXTURE_APP])
  t.equal(badProbation.code, 2)
  t.match(badProbation.stderr, /--probation must be a whole number of milliseconds from 0 to 2147483647, got "2s"/)
  const badBootConcurrency = await cli(['start', '--workers', '2', '--boot-concurrency', '0', FIXTURE_APP])
  t.equal(badBootConcurrency.code, 2)
  t.match(badBootConcurrency.stderr, /--boot-concurrency must be a whole number/)
  const badBootNice = await cli(['start', '--boot-nice', '20', FIXTURE_APP])
  t.equal(badBootNice.code, 2)
  t.match(badBootNice.stderr, /--boot-nice must be a whole number of niceness steps from 0 to 19, got "20"/)
  const badMaxDraining = await cli(['start', '--max-draining', '0', FIXTURE_APP])
  t.match(badMaxDraining.stderr, /--max-draining must be a whole number of generations from 1 to 1000, got "0"/)
  const unknown = await cli(['frobnicate'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /unknown command "frobnicate"/)
  const unknownOption = await cli(['start', '--colour', FIXTURE_APP])
  t.match(unknownOption.stderr, /unknown option --colour \(options: /)
  const noService = await cli(['reload', '--control', path.join(dir, 'none.sock')])
  t.equal(noService.code, 2)
  t.match(noService.stderr, /no supervisor listens on .*none\.sock/)
  t.match(noService.stderr, /kill -USR2 <pid>.*--pid-file/, 'and how to reload a service that runs without one')
  for (const command of ['reload', 'status']) {
    const asJson = await cli([command, '--json', '--control', path.join(dir, 'none.sock')])
    t.equal(asJson.code, 2, `${command} --json with no supervisor: exit 2`)
    t.match(JSON.parse(asJson.stdout), { ok: false, error: { code: 'HOT_RELOAD_CONTROL_FAILED', message: /no supervisor listens/ } }, `${command} --json says so as JSON`)
  }
  fs.writeFileSync(path.join(dir, 'file.sock'), 'not a socket')
  fs.chmodSync(dir, 0o700)
  const notSocket = await cli(['start', '--control', path.join(dir, 'file.sock'), FIXTURE_APP], { cwd: dir })
  t.equal(notSocket.code, 2)
  t.match(notSocket.stderr, /file\.sock exists and is not a socket/)
  const open = path.join(dir, 'open')
  fs.mkdirSync(open, { mode: 0o755 })
  fs.chmodSync(open, 0o755)
  const openDir = await cli(['start', '--control', path.join(open, 'app.sock'), FIXTURE_APP], { cwd: dir })
  t.equal(openDir.code, 2)
  t.match(openDir.stderr, /is open to other users \(mode 755\)/)
  // Asked for by path, a control socket that cannot be made stops the start.
  const uncreatable = await cli(['start', '--control', path.join(dir, 'file.sock', 'sub', 'app.sock'), FIXTURE_APP], { cwd: dir })
  t.equal(uncreatable.code, 2)
  t.match(uncreatable.stderr, /control socket: cannot create the directory .*file\.sock.sub \(ENOTDIR\)/)
  const version = await cli(['--version'])
  t.same([version.code, version.stdout.trim()], [0, require('../package.json').version], '--version prints the package\'s version')
  for (const command of ['start', 'reload', 'status']) {
    const help = await cli([command, '--help'])
    t.equal(help.code, 0)
    t.match(help.stdout, new RegExp(`Usage: fastify-hot-reload ${command}`))
    const topic = await cli(['help', command])
    t.same([topic.code, topic.stdout], [0, help.stdout], `help ${command}: that command's help`)
  }
  // A service name is a file name in the private directory, never a path out of it.
  for (const name of ['../../escape', 'a/b', '', '..']) {
    for (const args of [['start', '--name', name, FIXTURE_APP], ['reload', '--name', name], ['status', '--name', name]]) {
      const badName = await cli(args, { cwd: dir })
      t.equal(badName.code, 2, `${args[0]} --name ${JSON.stringify(name)}: exit 2`)
      t.match(badName.stderr, /--name must be letters, digits, "\.", "_" or "-"/)
    }
  }
  t.same(fs.readdirSync(dir), ['file.sock', 'open'], 'nothing made outside the private directory')
  // What would be ignored is an error instead.
  const extra = await cli(['reload', '--name', 'app', 'extra'])
  t.equal(extra.code, 2)
  t.match(extra.stderr, /reload takes only options, got "extra"/)
  t.match((await cli(['status', '--name', 'app', 'x'])).stderr, /status takes only options/)
  const noneAndOne = await cli(['start', '--reload-signal', 'none', '--reload-signal', 'SIGHUP', FIXTURE_APP])
  t.equal(noneAndOne.code, 2)
  t.match(noneAndOne.stderr, /--reload-signal none means no signal reloads: not together with SIGHUP/)
  const signalAlone = await cli(['reload', '--name', 'app', '--signal', 'SIGUSR2'])
  t.equal(signalAlone.code, 2)
  t.match(signalAlone.stderr, /--signal goes with --pid-file/)
  // A negative number given as the next argument gets the range's message, not the parser's.
  const negative = await cli(['start', '--workers', '-1', FIXTURE_APP])
  t.equal(negative.code, 2)
  t.match(negative.stderr, /--workers must be .*got "-1"/)
  t.match((await cli(['help', 'frobnicate'])).stderr, /no help for "frobnicate"/)
  // Not usage errors: no pointer to --help.
  const noPid = await cli(['reload', '--pid-file', path.join(dir, 'none.pid')])
  t.equal(noPid.code, 2)
  t.match(noPid.stderr, /does not hold a pid/)
  t.notMatch(noPid.stderr, /--help/, 'a service not running is not a usage error')
})

test('started by name with no usable default place for its control socket: it runs, says so once, and reloads by signal', async (t) => {
  const dir = tempDir(t)
  // XDG_RUNTIME_DIR under a file: the directory cannot be made (as in a read-only /tmp).
  fs.writeFileSync(path.join(dir, 'not-a-dir'), '')
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const { service } = startSupervised(t, {
    dir,
    env: { XDG_RUNTIME_DIR: path.join(dir, 'not-a-dir') },
    args: [BIN, 'start', '--name', 'no-control', '--', process.execPath, FIXTURE_APP]
  })
  const target = await servingTarget(service)
  await service.generationServing(1)
  t.equal(service.filter((l) => l.supervisor === 'control-unavailable').length, 1, 'one warning')
  t.ok(service.find((l) => l.supervisor === 'started' && l.controlPath === undefined), 'started without a control socket')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  process.kill(service.pid, 'SIGHUP')
  await service.generationServing(2)
  t.equal((await get(target)).body.version, 2, 'the reload by signal happened')
  process.kill(service.pid, 'SIGTERM')
  t.same(await service.exit, { code: 0, signal: null })
})

test('sd_notify: READY, RELOADING with MONOTONIC_USEC, READY again, STOPPING, to a real datagram socket', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const { socketPath: notifySocket, messages } = await notifyReceiver(t, dir)
  const { control, service } = startSupervised(t, { dir, env: { NOTIFY_SOCKET: notifySocket } })
  await service.waitForLine((l) => (l.hotReloadEvent === 'serving' && l.generation === 1))
  await waitFor(() => messages().some((m) => m.includes('READY=1')), 5000, 'READY=1')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  t.equal((await cli(['reload', '--control', control])).code, 0)
  await waitFor(() => messages().filter((m) => m.includes('READY=1')).length >= 2, 5000, 'READY=1 after the reload')
  process.kill(service.pid, 'SIGTERM')
  await service.exit
  await waitFor(() => messages().some((m) => m.includes('STOPPING=1')), 5000, 'STOPPING=1')
  const all = messages()
  t.comment(all.join('\n'))
  const reloading = all.find((m) => m.includes('RELOADING=1'))
  t.ok(reloading, 'RELOADING=1 sent')
  t.match(reloading, /MONOTONIC_USEC=\d+/, 'with MONOTONIC_USEC')
  const order = ['READY=1', 'RELOADING=1', 'READY=1', 'STOPPING=1'].map((needle, i, list) => all.findIndex((m, index) => m.includes(needle) && index >= (i === 0 ? 0 : all.findIndex((x) => x.includes(list[i - 1])))))
  t.ok(order.every((index) => index !== -1), `messages in order: ${all.join(' / ')}`)
})

test('a crash loop backs off exponentially, capped at --restart-max-delay', async (t) => {
  // A worker that served longer than the cap resets the backoff: each one here crashes well before
  // (100 ms after it listens, against a cap of 800 ms), even on a slow machine.
  const { dir, control, service } = startSupervised(t, { extra: ['--restart-delay', '50', '--restart-max-delay', '800'] })
  writeRelease(dir, { version: 1, plugin: PLUGIN, crashAfterMs: 100 })
  const delays = () => service.filter((l) => l.supervisor === 'restart-scheduled').map((l) => l.delayMs)
  await waitFor(() => delays().length >= 6, 60000, 'six restarts')
  t.same(delays().slice(0, 6), [50, 100, 200, 400, 800, 800], 'the delay doubles, up to the cap')
  t.ok(service.filter((l) => l.supervisor === 'worker-crashed' && l.code === 7).length >= 5, 'each crash is logged with its exit code')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const status = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.ok(status.restarts >= 4, `restarts are counted (${status.restarts})`)
})

test('a reload signal while the first generation still boots is not lost: it runs once that generation serves', async (t) => {
  const { dir, control, service } = startSupervised(t)
  // Long enough for the two status commands below (each a Node process) to come first: 1.5 s was
  // not, once, with another test of this file alongside at load 9.
  writeRelease(dir, { version: 1, plugin: PLUGIN, bootDelay: 6000 })
  // The supervisor is up (its control socket answers) while generation 1 still boots.
  await waitFor(async () => (await cli(['status', '--control', control, '--json'])).code === 0, 10000, 'the control socket')
  const before = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.equal(before.generation, 0, 'no generation serves yet')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  process.kill(service.pid, 'SIGHUP')
  await service.generationServing(2, 30000)
  const after = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
  t.same([after.generation, after.lastReload?.ok], [2, true], 'the reload ran once generation 1 served, and succeeded')
})

test('reload --timeout shorter than the reload: exit 1 with HOT_RELOAD_NO_ANSWER (not a usage error), and the reload still completes', async (t) => {
  const { dir, control, service } = startSupervised(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  writeRelease(dir, { version: 2, plugin: PLUGIN, bootDelay: 3000 })
  const early = await cli(['reload', '--control', control, '--timeout', '1000', '--json'])
  t.equal(early.code, 1, 'exit 1')
  t.match(JSON.parse(early.stdout), { ok: false, error: { code: 'HOT_RELOAD_NO_ANSWER' } })
  const text = await cli(['reload', '--control', control, '--timeout', '500'])
  t.equal(text.code, 1, 'exit 1 without --json too')
  t.match(text.stderr, /no reload outcome .* within 500 ms; it may still finish \(`status` tells\)/)
  await service.waitForLine((l) => l.supervisor === 'generation-serving' && l.generation === 2, 30000, 'generation 2 to serve')
  t.equal((await get(target)).body.version, 2, 'release 2 serves')
})

test('the serving worker\'s fastify.hotReload hears of every reload the supervisor runs: reloading, then reloaded before its drain, or reloadFailed and it serves on', async (t) => {
  const { dir, control, service } = startSupervised(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const target = await servingTarget(service)
  const first = await service.generationServing(1)
  const linesOf = (pid) => service.filter((l) => l.pid === pid && typeof l.hotReloadEvent === 'string')
  // Asked through the control socket (as by a signal): the worker did not ask, and still hears it.
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const good = JSON.parse((await cli(['reload', '--control', control, '--json'])).stdout)
  t.equal(good.ok, true)
  await service.waitForLine((l) => l.pid === first && l.hotReloadEvent === 'draining', 10000, 'the old worker to drain')
  const told = linesOf(first).map((l) => l.hotReloadEvent)
  t.same(told.slice(told.indexOf('reloading')), ['reloading', 'reloaded', 'draining', ...told.slice(told.indexOf('draining') + 1)], 'reloading, reloaded, then draining')
  t.match(linesOf(first).find((l) => l.hotReloadEvent === 'reloading'), { generation: 2, successorPid: good.pid }, 'reloading names the successor')
  t.match(linesOf(first).find((l) => l.hotReloadEvent === 'reloaded'), { ok: true, generation: 2, successorPid: good.pid }, 'reloaded with the result')
  // Asked by the worker's own reload(), a broken release: it hears the failure and serves on.
  writeRelease(dir, { version: 3, throwAtBoot: true })
  const broken = await post(target, '/admin/reload')
  t.equal(broken.body.ok, false)
  // Its log line can reach us after the HTTP answer: they travel apart.
  await service.waitForLine((l) => l.pid === good.pid && l.hotReloadEvent === 'reloadFailed', 5000, 'the worker\'s reloadFailed')
  const second = linesOf(good.pid).map((l) => l.hotReloadEvent)
  t.same(second.filter((e) => e !== 'serving'), ['reloading', 'reloadFailed'], 'reloading, then reloadFailed, and no drain')
  t.match(linesOf(good.pid).find((l) => l.hotReloadEvent === 'reloadFailed'), { ok: false, error: { code: 'HOT_RELOAD_SUCCESSOR_EXITED' } })
  const health = await get(target, '/health')
  t.match(health, { status: 200, body: { state: 'serving', pid: good.pid } }, 'it serves on, in state serving')
})

test('a runner between the supervisor and node that passes messages on but not sockets (tsx\'s CLI): the first generation fails, saying to give the supervisor node itself', async (t) => {
  const { dir, service } = startSupervised(t, { beforeScript: [require.resolve('tsx/cli')] })
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  t.equal((await service.closed).code, 1, 'the supervisor stops with exit 1')
  const failed = service.find((l) => l.supervisor === 'generation-failed')
  t.match(failed, { error: { code: 'HOT_RELOAD_WORKER_NOT_CONNECTED' } }, 'its first generation failed, and why')
  t.ok(service.find((l) => l.supervisor === 'first-generation-failed'))
})

test('a runner between the supervisor and node that keeps the channel to itself (npm start): the app refuses to serve, saying to give the supervisor node itself', async (t) => {
  const dir = tempDir(t)
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, scripts: { start: `node ${FIXTURE_APP}` } }))
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const service = Service.start(t, { cwd: dir, args: [BIN, 'start', '--control', path.join(dir, 'ctl', 'app.sock'), '--ready-timeout', '10000', '--', 'npm', 'start'] })
  t.equal((await service.closed).code, 1, 'the supervisor stops with exit 1')
  t.ok(service.find((l) => l.msg === 'boot failed' && l.code === 'HOT_RELOAD_WORKER_NOT_CONNECTED'), 'the app said why it would not serve')
  t.notOk(service.find((l) => l.code === 'HOT_RELOAD_SUPERVISOR_GONE'), 'not that its supervisor is gone')
  // The supervisor's own log names the runner too: with only its log at hand, the cause is there.
  t.match(service.find((l) => l.supervisor === 'generation-failed'), { error: { code: 'HOT_RELOAD_SUCCESSOR_EXITED', message: /through npm\b/ } }, 'the supervisor names npm as the cause')
})

test('supervised: reload() asked of a worker that has handed over answers HOT_RELOAD_NOT_SERVING naming the generation that serves afterwards', async (t) => {
  const { dir, control, service } = startSupervised(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, reloadWhenDraining: true })
  await servingTarget(service)
  const oldPid = await service.generationServing(1)
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const reload = JSON.parse((await cli(['reload', '--control', control, '--json'])).stdout)
  t.match(reload, { ok: true, generation: 2 })
  const { result } = await service.waitForLine((l) => l.event === 'reload-while-draining' && l.pid === oldPid, 15000, 'the old worker\'s answer')
  t.match(result, { ok: false, error: 'HOT_RELOAD_NOT_SERVING', generation: 2, pid: reload.pid })
})

'use strict'
// A bad release never takes the service down: the successor is killed, the old generation keeps
// serving, and reload() says why.
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { Service, REPO, servingTarget, tempDir, installedCopy, vanishingExecutable, writeRelease, isAlive, sleep, waitFor } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')
const { requestJson } = require('./helpers/http')
const { ES_MODULE_SYNTAX_WHERE } = require('../dist/lib/crash-report')

// Three tests at a time: each waits mostly on a successor that fails (readyTimeout, a boot that
// throws) and a drain, so their waits overlap. Each has its own service, port and load.
tap.jobs = 3

const PLUGIN = { idleGrace: 300, readyTimeout: 2500, drainTimeout: 3000 }
// Good releases get a generous readyTimeout: on a loaded machine a successor can take seconds.
const GOOD = { ...PLUGIN, readyTimeout: 20000 }
// A release that dies is seen dying whatever the timeout: a generous one keeps a slow boot on a
// loaded machine from turning its exit into a timeout.
const DIES = GOOD

const post = (target, route) => requestJson(target, route, { method: 'POST' })
const get = (target) => requestJson(target)

async function failedReload (t, badRelease, expectedCode, plugin = PLUGIN, keepAlive = true, deploy = () => {}) {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  const load = startLoad(t, target, { connections: 10, keepAlive })
  await sleep(200)
  deploy(dir)
  writeRelease(dir, { version: 2, plugin, ...badRelease })
  const { body: result } = await post(target, '/admin/reload')
  await sleep(300)
  const stats = await load.stop()
  t.comment(JSON.stringify({ result, stats }))
  t.equal(result.ok, false, 'reload() reports failure')
  t.equal(result.error.code, expectedCode, `with the cause (${result.error.message})`)
  t.equal(result.generation, 1, 'generation 1 keeps serving')
  t.equal(result.pid, service.pid)
  t.equal(stats.failed, 0, 'no request failed')
  t.equal(stats.non2xx, 0, 'no non-2xx response')
  t.same(Object.keys(stats.versions), ['1'], 'only the old version answered')
  if (result.successorPid !== undefined) t.notOk(isAlive(result.successorPid), 'the failed successor is gone')
  t.same(service.alive(), [service.pid], 'only the old generation is left')
  const health = await new Promise((resolve) => http.get({ ...target, path: '/health', agent: false }, resolve))
  t.equal(health.statusCode, 200, '/health stays 200')
  health.resume()
  const logged = service.find((l) => l.hotReload === 'reload-failed' && l.generation === 1 && l.pid === service.pid && l.level === 50)
  t.ok(logged, 'the failure is logged as an error')
  t.same(logged?.error, { type: 'Error', code: expectedCode, message: result.error.message }, 'with its code and message, not a stack into this package')
  return { service, target, dir, result }
}

test('a successor that throws at boot (the app catches it and exits 1)', async (t) => {
  await failedReload(t, { throwAtBoot: true }, 'HOT_RELOAD_SUCCESSOR_EXITED', DIES)
})

test('a successor with a syntax error: the failure names it and where it is, though the app never got to load the plugin', async (t) => {
  const { result, dir } = await failedReload(t, { requireFirst: 'broken.js' }, 'HOT_RELOAD_SUCCESSOR_EXITED', DIES, true, (dir) => {
    fs.writeFileSync(path.join(dir, 'broken.js'), 'const settings = (1;\n')
  })
  t.match(result.error.message, /exited with code 1 before it was ready: /)
  t.equal(result.error.message.replace(/^.*before it was ready: /, ''), `SyntaxError: Unexpected token ';' (${path.join(dir, 'broken.js')}:1)`)
})

/**
 * An ES module app (app.mjs in dir) with the plugin and `lines` of its own, started; the plugin's
 * own module is imported by file (an ES module cannot import a directory).
 */
async function startEsModuleApp (t, dir, lines) {
  fs.writeFileSync(path.join(dir, 'app.mjs'), [
    `import Fastify from ${JSON.stringify(require.resolve('fastify'))}`,
    `import hotReload from ${JSON.stringify(path.join(REPO, 'dist/index.js'))}`,
    "const app = Fastify({ logger: { level: 'info' } })",
    'await app.register(hotReload, { idleGrace: 300 })',
    ...lines,
    "await app.listen({ host: '127.0.0.1', port: 0 })"
  ].join('\n'))
  const service = Service.start(t, { cwd: dir, script: path.join(dir, 'app.mjs') })
  return { service, target: await servingTarget(service) }
}

/** Reloads by signal and resolves with the error its reload-failed line names. */
async function failedSignalReload (service) {
  const isFailure = (l) => l.hotReload === 'reload-failed'
  const before = service.filter(isFailure).length
  process.kill(service.pid, 'SIGUSR2')
  const failures = await service.waitForLines(isFailure, before + 1, 20000, 'the reload to fail')
  return failures.at(-1).error
}

test('an ES module app whose next release has a syntax error in a module it imports: the failure says where Node told its file and line, the old generation serves on', async (t) => {
  const dir = tempDir(t)
  const settings = path.join(dir, 'settings.mjs')
  fs.writeFileSync(settings, 'export const version = 1\n')
  const { service, target } = await startEsModuleApp(t, dir, [
    "import { version } from './settings.mjs'",
    "app.get('/', async () => ({ version, pid: process.pid }))"
  ])
  fs.writeFileSync(settings, 'export const version = (2;\n')
  const error = await failedSignalReload(service)
  t.equal(error.code, 'HOT_RELOAD_SUCCESSOR_EXITED')
  t.ok(error.message.endsWith(`before it was ready: SyntaxError: Unexpected token ';'${ES_MODULE_SYNTAX_WHERE}`), `it names the error and where its place was told (${error.message})`)
  const answer = await get(target)
  t.same([answer.status, answer.body.version, answer.body.pid], [200, 1, service.pid], 'the old generation serves on')
})

test('routes loaded by @fastify/autoload (the real one) with a syntax error: the failure names it once, with its place (CommonJS) or where that was told (ES module)', async (t) => {
  // autoload appends " at <the first line of the error's stack>" to the message: for a CommonJS file
  // its place, for an ES module the message over again.
  const dir = tempDir(t)
  const routes = path.join(dir, 'routes')
  fs.mkdirSync(routes)
  fs.writeFileSync(path.join(routes, 'version.mjs'), "export default async function (app) { app.get('/', async () => ({ version: 1, pid: process.pid })) }\n")
  const { service, target } = await startEsModuleApp(t, dir, [
    `import autoload from ${JSON.stringify(require.resolve('@fastify/autoload'))}`,
    `app.register(autoload, { dir: ${JSON.stringify(routes)} })`
  ])
  const brokenEsModule = path.join(routes, 'broken.mjs')
  fs.writeFileSync(brokenEsModule, 'export default async function (app) {\n')
  const esModule = await failedSignalReload(service)
  t.ok(esModule.message.endsWith(`before it was ready: SyntaxError: Unexpected end of input${ES_MODULE_SYNTAX_WHERE}`), `an ES module: the message once, and where its place was told (${esModule.message})`)
  fs.rmSync(brokenEsModule)
  const brokenCommonJs = path.join(routes, 'broken.cjs')
  fs.writeFileSync(brokenCommonJs, 'module.exports = async function (app) {\n')
  const commonJs = await failedSignalReload(service)
  t.ok(commonJs.message.endsWith(`before it was ready: SyntaxError: Unexpected end of input (${brokenCommonJs}:2)`), `CommonJS: its place, once (${commonJs.message})`)
  const answer = await get(target)
  t.same([answer.status, answer.body.version, answer.body.pid], [200, 1, service.pid], 'the old generation serves on')
})

test('a successor that leaves a rejection unhandled at boot fails the reload, naming it: it is not taken for ready in the moment before Node ends it', async (t) => {
  const { result } = await failedReload(t, { rejectAtBoot: true }, 'HOT_RELOAD_SUCCESSOR_EXITED', DIES)
  t.match(result.error.message, /exited with code 1 before it was ready: Error: release 2 rejects at boot$/)
})

test('a successor that dies of an uncaught exception at boot: the failure names it', async (t) => {
  const { result } = await failedReload(t, { throwUncaughtAtBoot: true }, 'HOT_RELOAD_SUCCESSOR_EXITED', DIES)
  t.match(result.error.message, /exited with code 1 before it was ready: TypeError: release 2 reads an undefined setting$/)
})

test('a successor whose boot fails in a plugin of the app, which logs it and exits 1 as Fastify\'s docs show: the failure names what the boot failed with', async (t) => {
  const { result } = await failedReload(t, { pluginFailsAtBoot: true }, 'HOT_RELOAD_SUCCESSOR_EXITED', DIES)
  t.match(result.error.message, /exited with code 1 before it was ready: its app's boot failed: Error: release 2 cannot reach its database$/)
})

test('a successor whose listen() fails on a port another process holds (the app logs it and exits 1): the failure names the address in use', async (t) => {
  const busy = require('node:net').createServer()
  await new Promise((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => busy.close())
  const port = busy.address().port
  const { result } = await failedReload(t, { listen: { port, host: '127.0.0.1' } }, 'HOT_RELOAD_SUCCESSOR_EXITED', DIES)
  t.match(result.error.message, new RegExp(`exited with code 1 before it was ready: its app's boot failed: Error: listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${port}$`))
})

test('a successor whose boot fails and that lives on without listening: the failure at readyTimeout names what the boot failed with', async (t) => {
  // readyTimeout must find the boot already failed: on a loaded machine (CI runs 3 files at a time,
  // this one 3 tests at a time) a successor's boot took more than 2.5 s and it was still booting.
  const { result } = await failedReload(t, { pluginFailsAtBoot: true, stayAfterBootFailure: true }, 'HOT_RELOAD_READY_TIMEOUT', { ...PLUGIN, readyTimeout: 6000 })
  t.match(result.error.message, /: its app's boot failed \(Error: release 2 cannot reach its database\), and it did not exit$/)
})

test('a successor that exits right after spawning', async (t) => {
  await failedReload(t, { exitAtStart: true }, 'HOT_RELOAD_SUCCESSOR_EXITED', DIES)
})

test('a successor that hangs before listening is killed at readyTimeout: the failure says it was still booting', async (t) => {
  const { result } = await failedReload(t, { hangBeforeListen: true }, 'HOT_RELOAD_READY_TIMEOUT')
  t.match(result.error.message, /: its app had not called listen\(\) yet \(still booting\)$/)
})

test('a successor whose own /health never says ready is taken down at readyTimeout', async (t) => {
  // Long enough for a slow successor to boot and run its first check before it is taken down.
  const { service, result } = await failedReload(t, { notReady: true }, 'HOT_RELOAD_READY_TIMEOUT', { ...PLUGIN, readyTimeout: 6000 })
  t.ok(service.find((l) => l.hotReload === 'successor-not-ready' && typeof l.reason === 'string' && l.pid !== service.pid), 'the successor said why it was not ready')
  t.match(result.error.message, /: its readiness check last found: GET \/health answered 500$/, 'and the failure says what its readiness check found')
})

test('a successor under pressure at readyTimeout: the failure names the 503\'s reason', async (t) => {
  const { result } = await failedReload(t, { underPressureCheckFails: true }, 'HOT_RELOAD_READY_TIMEOUT', { ...PLUGIN, readyTimeout: 6000 })
  t.match(result.error.message, /: its readiness check last found: GET \/health answered 503 \(under-pressure\)$/)
})

test('a successor stuck in its plugins\' boot (it never listens) is given up soon after readyTimeout, not after its drainTimeout', async (t) => {
  // Its abort would wait for a boot that does not end; it holds no connection, so it is killed.
  const plugin = { ...PLUGIN, drainTimeout: 30000 }
  const { result } = await failedReload(t, { slowBootMs: 120000 }, 'HOT_RELOAD_READY_TIMEOUT', plugin)
  // Before: only when Fastify's own pluginTimeout (10 s) ended the boot, or at readyTimeout + drainTimeout + 1 s.
  t.ok(result.durationMs < 9000, `failed ${result.durationMs} ms after reload() (readyTimeout ${plugin.readyTimeout}, drainTimeout ${plugin.drainTimeout})`)
})

test('a successor that listened and is taken down says it drains: its onClose hooks are let finish', async (t) => {
  // Its close takes longer than a successor that does not answer is given.
  const { service } = await failedReload(t, { notReady: true, onCloseMs: 3000 }, 'HOT_RELOAD_READY_TIMEOUT', { ...PLUGIN, readyTimeout: 6000, drainTimeout: 10000 })
  t.ok(service.find((l) => l.event === 'onClose-ran' && l.version === 2 && l.pid !== service.pid), 'the successor\'s onClose hook finished before it exited')
})

/** How many of `pid`'s fds are the listening socket on `port` (its inode from /proc/net/tcp). */
function listeningSocketFds (pid, port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  const row = fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A')
  const link = `socket:[${row[9]}]`
  return fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => { try { return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === link } catch { return false } }).length
}

test('a successor that times out in a synchronous boot step and listens after: the copy of the listening socket it still sends is closed, not kept open by the old generation', async (t) => {
  // readyTimeout fires while the successor is busy; it listens after, sends its copy of the
  // socket, and only then reads the abort. A copy kept here held the socket open after a later
  // stop closed ours, with nobody accepting: the connections queued on it were reset, not refused.
  const plugin = { ...PLUGIN, readyTimeout: 3000 }
  const dir = tempDir(t)
  const busyUntil = path.join(dir, 'boot-step-done')
  writeRelease(dir, { version: 1, plugin })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  t.equal(listeningSocketFds(service.pid, target.port), 1, 'before the reload: one fd for the listening socket')
  writeRelease(dir, { version: 2, plugin, busyUntilFile: busyUntil })
  const reloaded = post(target, '/admin/reload')
  await service.waitForLine((l) => l.hotReload === 'reload-started')
  const startedAt = Date.now()
  await service.waitForLine((l) => l.event === 'busy-before-listen' && l.pid !== service.pid)
  // The step ends after readyTimeout, well before the abort's kill (2 s later).
  await sleep(startedAt + plugin.readyTimeout + 300 - Date.now())
  fs.writeFileSync(busyUntil, '')
  const { body: result } = await reloaded
  t.equal(result.error?.code, 'HOT_RELOAD_READY_TIMEOUT', 'the reload failed at readyTimeout')
  await waitFor(() => !isAlive(result.successorPid), 10000, 'the failed successor to be gone')
  t.ok(service.find((l) => l.hotReload === 'adopted-socket' && l.pid === result.successorPid), 'the successor listened after it had failed (what this test is about)')
  t.equal(listeningSocketFds(service.pid, target.port), 1, 'the old generation holds the listening socket once, as before the reload')
  const health = await new Promise((resolve) => http.get({ ...target, path: '/health', agent: false }, resolve))
  t.equal(health.statusCode, 200, 'and serves on')
  health.resume()
})

test('a successor that is not ready never takes a connection, under new connections too', async (t) => {
  await failedReload(t, { notReady: true }, 'HOT_RELOAD_READY_TIMEOUT', PLUGIN, false)
})

test('a successor that cannot be spawned (its Node binary removed under the running service)', async (t) => {
  const execPath = vanishingExecutable(t)
  const plugin = { ...PLUGIN, successor: { execPath } }
  const { result } = await failedReload(t, {}, 'HOT_RELOAD_SPAWN_FAILED', plugin, true, () => fs.rmSync(execPath))
  t.ok(result.error.message.includes(execPath), 'the message names the executable')
})

test('a reload while this package\'s own files are gone (node_modules being installed again): the failure says the cause is on stderr, the old generation serves on', async (t) => {
  const fs = require('node:fs')
  const path = require('node:path')
  // A copy of the package, as an app's node_modules holds it, that the test can take away.
  const installed = installedCopy(t)
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: GOOD })
  const service = Service.start(t, { cwd: dir, env: { FHR_PLUGIN: installed } })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  // npm ci has removed the package and not put it back yet.
  fs.rmSync(path.join(installed, 'dist'), { recursive: true })
  writeRelease(dir, { version: 2, plugin: GOOD })
  const { body: result } = await post(target, '/admin/reload')
  t.equal(result.ok, false)
  t.equal(result.error.code, 'HOT_RELOAD_SUCCESSOR_EXITED')
  t.match(result.error.message, /exited with code 1 before it was ready: what ended it is on its stderr only: this package's own files \(.*fastify-hot-reload\) were gone when it was started/, 'it says where the cause is, and why it could not be told')
  t.match(service.stderr, /Cannot find module/, 'which is on stderr')
  t.equal(result.generation, 1, 'generation 1 keeps serving')
  const health = await new Promise((resolve) => http.get({ ...target, path: '/health', agent: false }, resolve))
  t.equal(health.statusCode, 200, '/health stays 200')
  health.resume()
})

test('a working directory that is gone (a release directory removed): the reload fails and says so, the old generation serves on', async (t) => {
  const fs = require('node:fs')
  const path = require('node:path')
  const release = path.join(tempDir(t), 'v1')
  fs.mkdirSync(release)
  writeRelease(release, { version: 1, plugin: GOOD })
  const service = Service.start(t, { cwd: release })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  fs.rmSync(release, { recursive: true })
  const { body: result } = await post(target, '/admin/reload')
  t.equal(result.ok, false)
  t.equal(result.error.code, 'HOT_RELOAD_SPAWN_FAILED')
  t.match(result.error.message, /working directory .*v1 does not exist/, 'the message names the directory, not the executable')
  t.equal((await post(target, '/admin/reload')).status, 200, 'the old generation still answers')
})

test('after a failed reload, the next good reload works', async (t) => {
  const { service, target, dir } = await failedReload(t, { throwAtBoot: true }, 'HOT_RELOAD_SUCCESSOR_EXITED', DIES)
  writeRelease(dir, { version: 3, plugin: GOOD })
  const { body: result } = await post(target, '/admin/reload')
  t.equal(result.ok, true, 'the second reload succeeded')
  t.equal(result.generation, 2, 'generation numbers count successful reloads only')
  t.not(result.pid, service.pid)
})

test('a burst of 10 signals starts one successor at a time', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: GOOD })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  const load = startLoad(t, target, { connections: 10, keepAlive: true })
  await sleep(200)
  writeRelease(dir, { version: 2, plugin: GOOD })
  // The kernel merges signals that arrive while one is pending: space them so that each lands.
  for (let i = 0; i < 10; i++) {
    process.kill(service.pid, 'SIGUSR2')
    await sleep(20)
  }
  const successor = await service.generationServing(2)
  await service.exit
  await sleep(300)
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed')
  t.equal(stats.non2xx, 0)
  const started = service.filter((l) => l.hotReloadEvent === 'reloading')
  t.equal(started.length, 1, 'exactly one successor was spawned')
  const received = service.filter((l) => l.hotReload === 'signal-received' && l.signal === 'SIGUSR2').length
  const coalesced = service.filter((l) => l.hotReload === 'reload-coalesced' || l.hotReload === 'reload-ignored').length
  t.ok(received >= 2, `several signals arrived (${received})`)
  t.equal(coalesced, received - 1, 'every extra signal was coalesced, and logged')
  t.same(service.alive(), [successor], 'one process serves')
  t.equal(service.filter((l) => (l.hotReloadEvent === 'serving' && l.generation > 1)).length, 1)
})

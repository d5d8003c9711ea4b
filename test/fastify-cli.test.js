'use strict'
// fastify-cli (`fastify start app.js`), the official way to run a Fastify app, from the registry:
// it empties process.argv before the app loads and puts its own close-with-grace on SIGUSR2 and
// SIGHUP. A reload signal must reload (the successor runs the real command line, read from
// /proc/self/cmdline) and must not also shut the service down.
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const { REPO, Service, descendantsOf, tempDir, waitFor, waitUntilGone, writeRelease, sleep } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')
const { request } = require('./faults/common')
const { freePort } = require('../tools/free-port')

const FASTIFY_CLI = path.join(REPO, 'node_modules/.bin/fastify')
// A short probation: the chain waits for each old generation to be gone, which it is only once its
// successor's probation is over too (2 s by default); the probation is not what this file tests.
const PLUGIN = { idleGrace: 300, drainTimeout: 10000, readyTimeout: 20000, probation: 300 }

/** A port nobody listens on right now (fastify-cli takes 0 to mean its default, 3000). */
async function reloadsUnderFastifyCli (t, argsFor, shortGrace) {
  const dir = tempDir(t)
  fs.copyFileSync(path.join(REPO, 'test/fixtures/cli-app.js'), path.join(dir, 'app.js'))
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const port = await freePort()
  const service = Service.start(t, { cwd: dir, args: [FASTIFY_CLI, 'start', '-l', 'info', ...argsFor(port), 'app.js'], env: { PORT: String(port) } })
  await service.generationServing(1)
  const target = { host: '127.0.0.1', port }
  const load = startLoad(t, target, { connections: 10, keepAlive: true })
  await sleep(300)
  const pid = await service.reloadThrough(dir, 3, PLUGIN)
  const stats = await load.stop()
  t.comment(JSON.stringify(stats))
  t.equal(stats.failed, 0, 'no request failed')
  t.equal(stats.non2xx, 0, 'no non-2xx response')
  for (let version = 1; version <= 3; version++) t.ok(stats.versions[version] > 0, `version ${version} was served`)
  const answer = await request(target)
  t.same([answer.status, answer.body.version, answer.body.pid], [200, 3, pid], 'the last generation serves')
  t.same(service.alive(), [pid], 'only the last generation is left')
  const warnings = service.filter((l) => l.hotReload === 'signal-listeners-set-aside' && l.level === 40)
  t.equal(warnings.length, 1, 'the plugin warned once that it set fastify-cli\'s listeners aside, not again at each generation')
  t.equal(warnings[0]?.signal, 'SIGUSR2')
  // fastify-cli exits --close-grace-delay ms after SIGTERM (default 500): shorter than a drain, it is said at start.
  const short = service.filter((l) => l.hotReload === 'close-grace-short')
  if (shortGrace === undefined) t.same(short, [], 'a --close-grace-delay past drainTimeout + 5 s: no warning')
  else t.match(short, [{ level: 40, closeGraceDelay: shortGrace, needed: PLUGIN.drainTimeout + 5000 }], `fastify-cli's close grace of ${shortGrace} ms is said once, with what it needs`)
}

test('fastify start -a 127.0.0.1 -p N --close-grace-delay 20000 app.js: SIGUSR2 reloads under load, 0 failed, the service stays up', async (t) => {
  await reloadsUnderFastifyCli(t, (port) => ['-a', '127.0.0.1', '-p', String(port), '--close-grace-delay', '20000'])
})

test('fastify start app.js (port from PORT, default address, default close grace): the same, and a warning that its 500 ms close grace cuts drains', async (t) => {
  await reloadsUnderFastifyCli(t, () => [], 500)
})

test('fastify start app.js with keepPid (Node 22.15+): the process becomes the supervisor, and the short close grace is said once, not again by its first worker', async (t) => {
  const dir = tempDir(t)
  fs.copyFileSync(path.join(REPO, 'test/fixtures/cli-app.js'), path.join(dir, 'app.js'))
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const port = await freePort()
  const service = Service.start(t, {
    cwd: dir,
    args: [FASTIFY_CLI, 'start', '-l', 'info', '-a', '127.0.0.1', '-p', String(port), 'app.js'],
    env: { FASTIFY_HOT_RELOAD_KEEP_PID: '1', XDG_RUNTIME_DIR: tempDir(t) }
  })
  const worker = await service.generationServing(1)
  const keeping = typeof process.execve === 'function'
  t.equal(worker !== service.pid, keeping, keeping ? 'a worker serves under the pid that was started' : 'no process.execve here: it serves itself')
  const short = service.filter((l) => l.hotReload === 'close-grace-short')
  t.equal(short.length, 1, 'the 500 ms close grace is said once')
  t.equal(short[0]?.pid, worker, 'by the process that serves')
  process.kill(service.pid, 'SIGTERM')
  t.same(await service.exit, { code: 0, signal: null }, 'SIGTERM ends it cleanly')
  await waitUntilGone(worker, 10000)
})

// fastify-cli's watch mode runs the app as its own script (lib/watch/fork.js), talks to it over IPC
// and restarts it on any change in the directory. keepPid must leave that process alone: replaced by
// a supervisor, it left the watcher's channel, changes no longer restarted it, and the supervisor
// outlived the watcher.
test('fastify start -w (its watch mode), keepPid left to its default: the app is not replaced, and a change restarts it', async (t) => {
  const dir = tempDir(t)
  fs.copyFileSync(path.join(REPO, 'test/fixtures/cli-app.js'), path.join(dir, 'app.js'))
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const port = await freePort()
  const target = { host: '127.0.0.1', port }
  const service = Service.start(t, {
    cwd: dir,
    args: [FASTIFY_CLI, 'start', '-w', '-l', 'info', '-a', '127.0.0.1', '-p', String(port), 'app.js'],
    // The default decision: not forced either way, and not under a test runner (TAP is tap's mark).
    env: { FASTIFY_HOT_RELOAD_KEEP_PID: undefined, TAP: undefined }
  })
  const answered = (version) => waitFor(async () => {
    try { const answer = await request(target); return answer.body.version === version ? answer.body : undefined } catch { return undefined }
  }, 20000, `version ${version} to answer`, 100)
  const first = await answered(1)
  const commandLine = fs.readFileSync(`/proc/${first.pid}/cmdline`, 'utf8')
  t.match(commandLine, /fastify-cli[\\/]lib[\\/]watch[\\/]fork\.js/, 'fastify-cli\'s own child answers')
  t.notOk(service.find((l) => l.hotReload === 'becoming-supervisor'), 'it did not become a supervisor')
  // A reload's successor would run outside the watcher and hold the port its next restart binds.
  process.kill(first.pid, 'SIGUSR2')
  const ignored = await service.waitForLine((l) => l.hotReload === 'reload-ignored' && l.pid === first.pid, 10000, 'the reload signal to be answered')
  t.match(ignored.reason, /fastify start -w/, 'SIGUSR2 under the watcher: no reload, and it says why')
  t.same((await request(target)).body.pid, first.pid, 'the same process serves on')
  t.notOk(service.find((l) => l.hotReload === 'reload-started'), 'no successor was started')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  const second = await answered(2)
  t.not(second.pid, first.pid, 'the change restarted the app: a new child answers the new version')
  // fastify-cli's watcher does not pass SIGTERM on to its child (with or without this plugin): both are ended here.
  const everything = [service.pid, ...descendantsOf(service.pid)]
  for (const pid of everything.reverse()) { try { process.kill(pid, 'SIGTERM') } catch {} }
  for (const pid of everything) await waitUntilGone(pid, 10000)
})

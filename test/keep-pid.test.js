'use strict'
// The pid a user started stays the service's pid (keepPid): before its first listen the process
// replaces itself with the supervisor (process.execve, Node 22.15+), which runs the app as its
// generations. Whatever waits on that pid (plain node, npm start, PM2 fork mode) sees one process
// for the whole life of the service; SIGUSR2 to it reloads with 0 failed requests, SIGTERM stops it
// with the service's exit code and nothing left behind. A Node without execve says so and stays
// standalone.
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const { REPO, FIXTURE_APP, Service, childrenOf, descendantsOf, isAlive, tempDir, waitFor, waitUntilGone, writeRelease, sleep } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')
const { usePm2 } = require('./helpers/pm2')
const { freePort } = require('../tools/free-port')

const PLUGIN = { idleGrace: 300, drainTimeout: 10000, readyTimeout: 20000, probation: 500 }
/**
 * keepPid on, and a runtime directory of the test's own: the default control socket (named after
 * the app: app.sock) is then this test's, not shared with another test file's services running at
 * the same time, whose sockets would come and go beside it.
 */
function keep (t) {
  return { FASTIFY_HOT_RELOAD_KEEP_PID: '1', XDG_RUNTIME_DIR: tempDir(t) }
}

/**
 * Once the service has ended: every supervisor it ran stopped cleanly (its `stopped` line) and
 * removed its control socket, whatever its runner did to end it.
 */
async function assertControlSocketsGone (t, service) {
  // Should an assertion below fail, what was left is removed all the same.
  t.teardown(async () => {
    for (const line of service.filter((l) => l.supervisor === 'started' && typeof l.controlPath === 'string')) {
      await waitUntilGone(line.pid, 5000).catch(() => {})
      fs.rmSync(line.controlPath, { force: true })
    }
  })
  const started = service.filter((l) => l.supervisor === 'started' && typeof l.controlPath === 'string')
  t.ok(started.length > 0, 'a supervisor started')
  for (const line of started) {
    await waitUntilGone(line.pid, 15000)
    t.ok(service.find((l) => l.supervisor === 'stopped' && l.pid === line.pid), `supervisor ${line.pid} stopped cleanly`)
    t.notOk(fs.existsSync(line.controlPath), `supervisor ${line.pid} removed its control socket`)
  }
}
const canExecve = typeof process.execve === 'function'

function commandLine (pid) {
  try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ') } catch { return '' }
}

const isSupervisor = (pid) => /fastify-hot-reload\.js start --from-plugin/.test(commandLine(pid))

/** Reloads by SIGUSR2 to `pid` for versions 2..to; each time waits for that generation to serve. */
async function reloadKeepingPid (t, service, dir, pid, to) {
  for (let version = 2; version <= to; version++) {
    writeRelease(dir, { version, plugin: PLUGIN })
    process.kill(pid, 'SIGUSR2')
    await service.generationServing(version)
    t.ok(isAlive(pid) && isSupervisor(pid), `after reload ${version - 1}: pid ${pid} is still the service`)
    await sleep(300)
  }
}

/** The same under keep-alive load: 0 failed, and the newest release answered. */
async function reloadsUnderLoad (t, service, url, dir, pid, to, newest = 'the newest release serves') {
  const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10, keepAlive: true })
  await sleep(300)
  await reloadKeepingPid(t, service, dir, pid, to)
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed')
  t.ok(stats.versions[to] > 0, newest)
  return stats
}

/** Runs a command to its end (60 s deadline); resolves with its exit code and output. */
function run (command, args, options) {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 60000, ...options }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }))
  })
}

if (canExecve) {
  test('node app.js: the started pid becomes the supervisor and keeps serving across reloads, 0 failed; SIGTERM ends it all', async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    // Both services below in one runtime directory: two app.js, as on one machine.
    const env = keep(t)
    const service = Service.start(t, { cwd: dir, env })
    const pid = service.pid
    const url = await service.listening()
    await service.generationServing(1)
    t.ok(isSupervisor(pid), 'the pid node started now runs the supervisor')
    t.ok(service.find((l) => l.keepPid === true && l.pid === pid), 'it said so before it was replaced')
    // A second service of the same name (app.js) keeps its pid too, on a control socket of its own.
    const otherDir = tempDir(t)
    writeRelease(otherDir, { version: 1, plugin: PLUGIN })
    const other = Service.start(t, { cwd: otherDir, env })
    await other.generationServing(1)
    const controls = [service, other].map((s) => s.find((l) => l.pid === s.pid && typeof l.controlPath === 'string')?.controlPath)
    t.ok(controls[0] && controls[1] && controls[0] !== controls[1], `two app.js, two control sockets: ${controls.join(', ')}`)
    t.match(other.find((l) => l.supervisor === 'control-name-taken' && l.level === 40), { name: 'app', controlPath: controls[1] },
      'the second one warns that `--name app` reaches the other, and names its own socket')
    process.kill(other.pid, 'SIGTERM')
    t.same(await other.exit, { code: 0, signal: null }, 'the second one stops on its own')
    const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10, keepAlive: true })
    await sleep(300)
    await reloadKeepingPid(t, service, dir, pid, 3)
    const stats = await load.stop()
    t.comment(JSON.stringify(stats))
    t.equal(stats.failed, 0, 'no request failed')
    for (let version = 1; version <= 3; version++) t.ok(stats.versions[version] > 0, `version ${version} was served`)
    // The previous generations are gone once drained (their probation is over).
    const workers = await waitFor(() => { const now = descendantsOf(pid); return now.length === 1 && now }, 15000, 'one worker left under the pid')
    t.equal(workers.length, 1, 'one worker left under the pid')
    process.kill(pid, 'SIGTERM')
    const exit = await service.exit
    t.same(exit, { code: 0, signal: null }, 'the pid that was started exits 0 after a graceful stop')
    for (const worker of workers) await waitUntilGone(worker, 10000)
    t.pass('no worker outlives it')
  })

  test('a preload in NODE_OPTIONS (an APM agent, say) runs in every generation, never in the supervisor', async (t) => {
    const dir = tempDir(t)
    const ran = path.join(dir, 'preloaded-in')
    fs.writeFileSync(path.join(dir, 'agent.js'), `require('node:fs').appendFileSync(${JSON.stringify(ran)}, process.pid + '\\n')\n`)
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const service = Service.start(t, { cwd: dir, env: { ...keep(t), NODE_OPTIONS: `--require ${path.join(dir, 'agent.js')} --max-old-space-size=256` } })
    const pid = service.pid
    await service.listening()
    const first = await service.generationServing(1)
    await reloadKeepingPid(t, service, dir, pid, 2)
    const second = await service.generationServing(2)
    const pids = fs.readFileSync(ran, 'utf8').trim().split('\n').map(Number)
    t.ok(pids.includes(first) && pids.includes(second), 'each generation ran it')
    // The pid ran it once as the app, before it became the supervisor; never since.
    t.equal(pids.filter((p) => p === pid).length, 1, 'the supervisor\'s image did not run it')
    process.kill(pid, 'SIGTERM')
    t.same(await service.exit, { code: 0, signal: null })
  })

  test('a logger transport (a worker thread, as pino-pretty is): the line that says the pid becomes the supervisor reaches it before the process image is replaced', async (t) => {
    const dir = tempDir(t)
    const logFile = path.join(dir, 'app.log')
    // As pino-pretty writes: to a SonicBoom of its own, asynchronously (here it even holds lines
    // until 4 KB have come, or it is flushed).
    fs.writeFileSync(path.join(dir, 'to-file.js'), `'use strict'
const pino = require(require.resolve('pino', { paths: [${JSON.stringify(REPO)}] }))
module.exports = (options) => pino.destination({ dest: options.file, sync: false, minLength: 4096 })
`)
    fs.writeFileSync(path.join(dir, 'app.js'), `'use strict'
const Fastify = require(require.resolve('fastify', { paths: [${JSON.stringify(REPO)}] }))
const hotReload = require(${JSON.stringify(REPO)})
const app = Fastify({ logger: { transport: { target: ${JSON.stringify(path.join(dir, 'to-file.js'))}, options: { file: ${JSON.stringify(logFile)} } } } })
app.register(hotReload, ${JSON.stringify(PLUGIN)})
app.get('/', async () => ({ pid: process.pid }))
app.listen({ port: 0, host: '127.0.0.1' })
`)
    for (let run = 1; run <= 3; run++) {
      fs.rmSync(logFile, { force: true })
      const service = Service.start(t, { cwd: dir, script: path.join(dir, 'app.js'), env: keep(t) })
      // The supervisor's own lines (its stdout) say when the first generation serves.
      await service.waitForLine((l) => l.supervisor === 'generation-serving', 20000, 'the first generation to serve')
      const parsed = (line) => { try { return JSON.parse(line) } catch { return {} } }
      const lines = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').map(parsed) : []
      t.ok(lines.some((l) => l.hotReload === 'becoming-supervisor' && l.pid === service.pid), `run ${run}: the line reached the transport`)
      process.kill(service.pid, 'SIGTERM')
      t.equal((await service.exit).code, 0)
    }
  })

  test('no usable place for the control socket (a read-only /tmp, another user\'s XDG_RUNTIME_DIR): the service starts all the same, says so once, and reloads by signal with 0 failed', async (t) => {
    const dir = tempDir(t)
    // A directory that cannot be made: its parent is a file (as a read-only /tmp refuses it).
    fs.writeFileSync(path.join(dir, 'not-a-dir'), '')
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const service = Service.start(t, { cwd: dir, env: { ...keep(t), XDG_RUNTIME_DIR: path.join(dir, 'not-a-dir') } })
    const pid = service.pid
    const url = await service.listening()
    await service.generationServing(1)
    t.ok(isSupervisor(pid), 'the pid became the supervisor')
    const warnings = service.filter((l) => l.supervisor === 'control-unavailable')
    t.equal(warnings.length, 1, 'one warning, at start')
    t.match(warnings[0]?.err?.message, /not-a-dir/, 'naming the place it could not use')
    await reloadsUnderLoad(t, service, url, dir, pid, 3)
    process.kill(pid, 'SIGTERM')
    t.same(await service.exit, { code: 0, signal: null }, 'SIGTERM: exit 0')
  })

  test('as PID 1 (Docker\'s CMD ["node", "app.js"], here a PID namespace): the app\'s PID 1 becomes the supervisor, reloads with 0 failed, SIGTERM stops it all', async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const service = Service.start(t, {
      cwd: dir,
      command: 'unshare',
      args: ['--pid', '--fork', '--mount-proc', process.execPath, FIXTURE_APP],
      env: keep(t),
      trackLogPids: false // pids in the log are the namespace's
    })
    const url = await service.listening()
    await service.generationServing(1)
    const outer = await waitFor(() => childrenOf(service.pid)[0]?.pid, 5000, 'the PID 1 process')
    service.pids.add(outer)
    t.ok(isSupervisor(outer), 'PID 1, started as node app.js, now runs the supervisor')
    t.ok(service.find((l) => l.supervisor === 'started' && l.pid === 1), 'as PID 1')
    const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10, keepAlive: true })
    await sleep(300)
    for (let version = 2; version <= 3; version++) {
      writeRelease(dir, { version, plugin: PLUGIN })
      process.kill(outer, 'SIGUSR2') // docker kill -s USR2 <container>
      await service.generationServing(version)
      await sleep(300)
    }
    const stats = await load.stop()
    t.equal(stats.failed, 0, 'no request failed')
    t.ok(stats.versions[3] > 0, 'the newest release serves')
    process.kill(outer, 'SIGTERM') // docker stop
    t.same(await service.exit, { code: 0, signal: null }, 'the container would exit 0')
  })

  test('npm start: SIGUSR2 to the pid npm started reloads, npm keeps waiting on it, no orphan at the end', async (t) => {
    const dir = tempDir(t)
    fs.copyFileSync(FIXTURE_APP, path.join(dir, 'app.js'))
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'keep-pid-app', private: true, scripts: { start: 'node app.js' } }))
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const service = Service.start(t, { cwd: dir, command: 'npm', args: ['start', '--silent'], env: keep(t) })
    const url = await service.listening()
    await service.generationServing(1)
    // The process npm started (sh -c execs node): the one that runs the supervisor now.
    const started = await waitFor(() => descendantsOf(service.pid).find(isSupervisor), 10000, 'the supervisor under npm')
    await reloadsUnderLoad(t, service, url, dir, started, 3)
    t.ok(isAlive(service.pid), 'npm is still running: its child never exited')
    const everything = [service.pid, ...descendantsOf(service.pid)]
    process.kill(started, 'SIGTERM')
    const exit = await service.exit
    t.equal(exit.code, 0, 'npm start ends with the service\'s exit code (0)')
    for (const pid of everything) await waitUntilGone(pid, 10000)
    t.pass('npm, the supervisor and every worker are gone')
  })

  test('PM2 fork mode with --wait-ready: the app says at start that PM2 will wait out listen_timeout, and still comes online with the same pid', async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const { pm2, logLines } = usePm2(t, dir, keep(t))
    const started = await pm2('start', FIXTURE_APP, '--name', 'wr', '--no-autorestart', '--wait-ready', '--listen-timeout', '2000')
    t.equal(started.code, 0, `pm2 start --wait-ready ${started.stderr}`)
    const app = JSON.parse((await pm2('jlist')).stdout).find((a) => a.name === 'wr')
    t.same([app.pm2_env.status, app.pm2_env.restart_time], ['online', 0], 'online after listen_timeout, never restarted')
    t.ok(isSupervisor(app.pid), 'the pid PM2 started runs the supervisor')
    const warnings = logLines('wr').filter((l) => l.hotReload === 'pm2-wait-ready')
    t.equal(warnings.length, 1, 'one warning about wait_ready, before the process became the supervisor')
    t.equal(warnings[0].listenTimeout, 2000, 'it names the timeout PM2 will wait')
    const workers = descendantsOf(app.pid)
    await pm2('stop', 'wr')
    await waitUntilGone(app.pid, 15000)
    for (const worker of workers) await waitUntilGone(worker, 15000)
  })

  test('PM2 fork mode: pm2 sendSignal SIGUSR2 reloads with 0 failed, PM2 sees one pid and no restart; pm2 stop drains', async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const { pm2, logLines } = usePm2(t, dir, keep(t))
    // PM2 ends a process with SIGINT to its whole tree (supervisor and worker at once), then SIGKILL
    // after kill_timeout (1600 ms by default): long enough here for the drain below.
    const started = await pm2('start', FIXTURE_APP, '--name', 'kp', '--no-autorestart', '--kill-timeout', '15000')
    t.equal(started.code, 0, `pm2 start ${started.stderr}`)
    const list = async () => JSON.parse((await pm2('jlist')).stdout).find((app) => app.name === 'kp')
    // Asked every 200 ms: each `pm2 jlist` is a Node process, and the app boots meanwhile.
    const first = await waitFor(async () => { const app = await list(); return app?.pid > 0 && isSupervisor(app.pid) ? app : undefined }, 20000, 'the app under PM2 to become the supervisor', 200)
    const pid = first.pid
    const lines = () => logLines('kp')
    const servingLine = (version) => waitFor(() => lines().find((l) => l.hotReloadEvent === 'serving' && l.generation === version), 20000, `generation ${version} to serve under PM2`)
    await servingLine(1)
    const listening = lines().find((l) => /Server listening at/.test(l.msg || ''))
    const url = new URL(/listening at (\S+)/.exec(listening.msg)[1])
    const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10, keepAlive: true })
    await sleep(300)
    for (let version = 2; version <= 3; version++) {
      writeRelease(dir, { version, plugin: PLUGIN })
      const signalled = await pm2('sendSignal', 'SIGUSR2', 'kp')
      t.equal(signalled.code, 0, `pm2 sendSignal ${signalled.stderr}`)
      await servingLine(version)
      await sleep(300)
    }
    const stats = await load.stop()
    t.comment(JSON.stringify(stats))
    t.equal(stats.failed, 0, 'no request failed')
    t.ok(stats.versions[3] > 0, 'the newest release serves')
    const after = await list()
    t.same([after.pid, after.pm2_env.status, after.pm2_env.restart_time], [pid, 'online', 0], 'PM2: same pid, online, never restarted')
    const workers = descendantsOf(pid)
    const slow = fetch(`http://${url.host}/slow?ms=1500`).then((res) => res.status, (err) => err.cause?.code ?? err.message)
    await waitFor(() => lines().find((l) => l.req?.url === '/slow?ms=1500'), 10000, 'the slow request to arrive')
    const stopped = await pm2('stop', 'kp')
    t.equal(stopped.code, 0, 'pm2 stop')
    t.equal(await slow, 200, 'the request in flight at pm2 stop finished: PM2\'s SIGINT to every process and the supervisor\'s SIGTERM are one stop for the worker')
    await waitUntilGone(pid, 15000)
    for (const worker of workers) await waitUntilGone(worker, 15000)
    t.pass('pm2 stop ends the service and its workers')
  })

  test('npx tsx app.ts: SIGUSR2 to the pid tsx started (its child) reloads, tsx keeps waiting; SIGTERM to tsx ends it all', async (t) => {
    const dir = tempDir(t)
    // TypeScript syntax: only a loader (tsx's, passed on in the workers' execArgv) runs this.
    fs.writeFileSync(path.join(dir, 'app.ts'), `const fixture: string = ${JSON.stringify(FIXTURE_APP)}\nrequire(fixture)\n`)
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const service = Service.start(t, { cwd: dir, command: path.join(REPO, 'node_modules/.bin/tsx'), args: ['app.ts'], env: keep(t) })
    const url = await service.listening()
    await service.generationServing(1)
    const started = await waitFor(() => descendantsOf(service.pid).find(isSupervisor), 10000, 'the supervisor under tsx')
    t.match(commandLine(started), /--name app /, 'named after the app, not after tsx\'s loader')
    await reloadsUnderLoad(t, service, url, dir, started, 3, 'the newest release (TypeScript, through tsx\'s loader) serves')
    t.ok(isAlive(service.pid), 'tsx is still running')
    const everything = [service.pid, ...descendantsOf(service.pid)]
    // A connection that keeps the last generation's drain busy: tsx must wait for the supervisor's stop.
    const slow = fetch(`http://${url.host}/slow?ms=500`).then((res) => res.json())
    await service.waitForLine((l) => l.req?.url === '/slow?ms=500', 10000, 'the slow request to arrive')
    process.kill(service.pid, 'SIGTERM') // tsx passes SIGTERM on to its child
    // tsx kills a child that does not acknowledge the signal (through its preflight) within 30 ms.
    t.equal((await service.exit).code, 0, 'tsx exits 0: its child, the supervisor, stopped by itself')
    t.equal((await slow).slow, true, 'the request in flight was answered')
    for (const pid of everything) await waitUntilGone(pid, 10000)
    t.ok(service.find((l) => l.hotReloadEvent === 'drained' && l.reason === 'shutdown'), 'the last generation drained')
    t.pass('tsx, the supervisor and every worker are gone')
    await assertControlSocketsGone(t, service)
  })

  test('nodemon --signal SIGTERM: a file change restarts the service cleanly, SIGUSR2 to the app reloads with 0 failed', async (t) => {
    const dir = tempDir(t)
    fs.copyFileSync(FIXTURE_APP, path.join(dir, 'app.js'))
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    // A fixed port, as a development server has: the restarted service listens on it again.
    const port = await freePort()
    const service = Service.start(t, { cwd: dir, command: path.join(REPO, 'node_modules/.bin/nodemon'), args: ['--signal', 'SIGTERM', '--watch', 'app.js', '--delay', '0', 'app.js'], env: { ...keep(t), PORT: String(port) } })
    const url = await service.listening()
    await service.generationServing(1)
    const first = await waitFor(() => descendantsOf(service.pid).find(isSupervisor), 10000, 'the supervisor under nodemon')
    const firstTree = [first, ...descendantsOf(first)]
    // nodemon forks the app with an IPC channel, whose fd does not survive execve: the supervisor's image must not claim it.
    t.notMatch(fs.readFileSync(`/proc/${first}/environ`, 'utf8'), /(^|\0)NODE_CHANNEL_FD=/, 'the supervisor was not started with NODE_CHANNEL_FD')
    // A development loop: a change of the file nodemon watches restarts the service (a plain restart).
    writeRelease(dir, { version: 2, plugin: PLUGIN })
    fs.appendFileSync(path.join(dir, 'app.js'), '\n// changed\n')
    for (const pid of firstTree) await waitUntilGone(pid, 20000)
    t.pass('the first supervisor and its workers are gone: nothing orphaned')
    const second = await waitFor(() => descendantsOf(service.pid).find((pid) => pid !== first && isSupervisor(pid)), 20000, 'nodemon to start the service again')
    await service.waitForEvent('serving', (l) => l.pid !== first && descendantsOf(second).includes(l.pid), 20000)
    const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10, keepAlive: true })
    await sleep(300)
    writeRelease(dir, { version: 3, plugin: PLUGIN })
    process.kill(second, 'SIGUSR2')
    await service.generationServing(2, 20000)
    await sleep(300)
    const stats = await load.stop()
    t.equal(stats.failed, 0, 'a reload under nodemon fails no request')
    t.ok(stats.versions[3] > 0, 'the new release serves')
    t.ok(isAlive(second) && isAlive(service.pid), 'nodemon and the service it runs are still up')
    const secondTree = [second, ...descendantsOf(second)]
    process.kill(service.pid, 'SIGTERM')
    await service.exit
    for (const pid of secondTree) await waitUntilGone(pid, 20000)
    t.notOk(service.find((l) => l.supervisor === 'worker-crashed'), 'no worker crashed')
    await assertControlSocketsGone(t, service)
  })
} else {
  test(`Node ${process.version} has no process.execve: a warning says the pid is not kept, reloads stay standalone`, async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const service = Service.start(t, { cwd: dir, env: keep(t) })
    await service.generationServing(1)
    const warning = service.find((l) => l.level === 40 && l.keepPid === false)
    t.ok(warning, 'a warning at startup')
    t.match(warning?.reason, /execve/, 'it names what is missing')
    const pid = await service.reloadThrough(dir, 2, PLUGIN)
    t.not(pid, service.pid, 'standalone: the service moved to a new pid')
  })
}

test('under a test runner (tap sets TAP) and with keepPid: false, the pid is not replaced', async (t) => {
  for (const [what, env, plugin] of [['TAP=1', { FASTIFY_HOT_RELOAD_KEEP_PID: undefined, TAP: '1' }, PLUGIN], ['keepPid: false', { FASTIFY_HOT_RELOAD_KEEP_PID: undefined }, { ...PLUGIN, keepPid: false }]]) {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, plugin })
    const service = Service.start(t, { cwd: dir, env })
    await service.generationServing(1)
    t.notOk(isSupervisor(service.pid), `${what}: the app runs in the pid it was started as`)
    t.notOk(service.find((l) => l.level === 40 && l.keepPid === false), `${what}: nothing to warn about`)
  }
})

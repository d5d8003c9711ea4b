'use strict'
// A package manager as a container's main process (Docker's CMD ["npm", "start"]) keeps the
// container's signals from the app: as PID 1 npm passes no SIGUSR2 on, and at SIGTERM it exits
// without waiting for the app. The process the user started says so once, at start, whether it is
// the plugin (keepPid or standalone) or the supervisor started by name; `npm start` under a shell
// or a service manager (the app's own pid gets the signals) says nothing. Real npm, real PID
// namespaces (unshare, as the keepPid test of PID 1 does). Node's own `node --run start` is the
// same (as PID 1 it ignores SIGTERM too: the runtime kills everything at its timeout).
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const { BIN, FIXTURE_APP, Service, childrenOf, descendantsOf, tempDir, waitFor, waitUntilGone, writeRelease } = require('./helpers/processes')
const { usePm2 } = require('./helpers/pm2')
const { freePort } = require('../tools/free-port')

const PLUGIN = { idleGrace: 300, drainTimeout: 5000, readyTimeout: 20000, probation: 500 }

/** A directory with the fixture app and a package.json whose `start` script is `start`. */
function npmApp (t, start) {
  const dir = tempDir(t)
  fs.copyFileSync(FIXTURE_APP, path.join(dir, 'app.js'))
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'signal-path-app', private: true, scripts: { start } }))
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  return dir
}

const NPM_START = ['npm', 'start', '--silent']
// Node's own task runner (Node 22+): it runs the script through sh, as npm does.
const NODE_RUN_START = [process.execPath, '--run', 'start']
const hasNodeRun = Number(process.versions.node.split('.')[0]) >= 22

/** `runner` (npm start) as PID 1 of a new PID namespace; resolves once the app serves, with PID 1's pid out here. */
async function runnerAsPid1 (t, dir, runner = NPM_START) {
  const service = Service.start(t, {
    cwd: dir,
    command: 'unshare',
    args: ['--pid', '--fork', '--mount-proc', ...runner],
    // The control socket in a directory of this test's: other tests run supervisors named app too.
    env: { FASTIFY_HOT_RELOAD_KEEP_PID: '1', XDG_RUNTIME_DIR: dir },
    trackLogPids: false // pids in the log are the namespace's
  })
  await service.listening()
  const pid1 = await waitFor(() => childrenOf(service.pid)[0]?.pid, 5000, 'the runner, PID 1 of the namespace')
  service.pids.add(pid1)
  return { service, pid1 }
}

/**
 * Ends what the runner started: SIGTERM to it (npm exits, and the namespace goes with it), else
 * SIGKILL (`node --run` as PID 1 ignores SIGTERM, as a container's runtime finds at its timeout);
 * every process is gone.
 */
async function stop (t, service, pid1) {
  const everything = [pid1, ...descendantsOf(pid1)]
  process.kill(pid1, 'SIGTERM')
  try {
    await waitUntilGone(pid1, 3000)
  } catch {
    process.kill(pid1, 'SIGKILL')
  }
  await service.exit
  for (const pid of everything) await waitUntilGone(pid, 10000)
  t.pass('the runner and everything it started are gone')
}

const isWarning = (l) => l.hotReload === 'signals-blocked' || l.supervisor === 'signals-blocked'

/** `runner` as PID 1 running `start`: once serving, exactly one warning, like `expected`. */
async function warnsOnce (t, start, expected, who, runner = NPM_START, manager = 'npm') {
  const { service, pid1 } = await runnerAsPid1(t, npmApp(t, start), runner)
  await service.generationServing(1)
  const warnings = service.filter(isWarning)
  t.equal(warnings.length, 1, 'one warning')
  t.match(warnings[0], { ...expected, manager, managerPid: 1, level: 40 }, who)
  await stop(t, service, pid1)
}

test('CMD ["npm", "start"] with the plugin: the started process warns once that npm keeps the signals', async (t) => {
  // Once: not again from the supervisor it became, nor from a worker.
  await warnsOnce(t, 'node app.js', { hotReload: 'signals-blocked' }, 'from the plugin, naming npm as PID 1')
})

test('CMD ["npm", "start"] with the supervisor by name: the supervisor warns once, its workers do not', async (t) => {
  const start = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} start -- ${JSON.stringify(process.execPath)} app.js`
  await warnsOnce(t, start, { supervisor: 'signals-blocked' }, 'from the supervisor')
})

// Not on Node 20, which has no --run.
if (hasNodeRun) {
  test('CMD ["node", "--run", "start"]: the same, naming node --run', async (t) => {
    await warnsOnce(t, 'node app.js', { hotReload: 'signals-blocked' }, 'from the plugin, naming node --run as PID 1', NODE_RUN_START, 'node --run')
  })
}

test('npm start under a shell (not where the signals arrive): no warning', async (t) => {
  const dir = npmApp(t, 'node app.js')
  // Standalone: the pid npm's shell started serves and takes the signals itself.
  const service = Service.start(t, { cwd: dir, command: 'npm', args: ['start', '--silent'] })
  await service.listening()
  await service.generationServing(1)
  t.notOk(service.find(isWarning), 'no signals-blocked warning')
  const everything = [service.pid, ...descendantsOf(service.pid)]
  const app = await waitFor(() => descendantsOf(service.pid).find((pid) => /app\.js/.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')) && !/^sh\0/.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'))), 5000, 'the app under npm')
  process.kill(app, 'SIGTERM')
  t.same(await service.exit, { code: 0, signal: null }, 'npm start ends with the app\'s exit code')
  for (const pid of everything) await waitUntilGone(pid, 10000)
})

test('pm2 start npm -- start: the app warns once that PM2\'s signals stop at npm', async (t) => {
  const dir = npmApp(t, 'node app.js')
  const { pm2, logLines } = usePm2(t, dir, { PORT: String(await freePort()), FASTIFY_HOT_RELOAD_KEEP_PID: '0' })
  let started = []
  // What npm started outlives it when PM2 ends npm alone.
  t.teardown(() => { for (const pid of started) { try { process.kill(pid, 'SIGKILL') } catch {} } })
  const result = await pm2('start', 'npm', '--name', 'np', '--', 'start')
  t.equal(result.code, 0, `pm2 start npm ${result.stderr}`)
  const lines = () => logLines('np')
  await waitFor(() => lines().some((l) => l.hotReloadEvent === 'serving') || undefined, 20000, 'the app under PM2 and npm to serve')
  const npm = JSON.parse((await pm2('jlist')).stdout).find((app) => app.name === 'np').pid
  started = descendantsOf(npm)
  const warnings = lines().filter(isWarning)
  t.equal(warnings.length, 1, 'one warning')
  t.match(warnings[0], { hotReload: 'signals-blocked', manager: 'npm', managerPid: npm, startedBy: 'PM2' }, 'it names npm, as what PM2 signals')
  await pm2('kill')
  for (const pid of started) { try { process.kill(pid, 'SIGTERM') } catch {} }
  for (const pid of [npm, ...started]) await waitUntilGone(pid, 10000)
})

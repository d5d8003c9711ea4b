'use strict'
// The start commands the examples ship, run the way their runtimes run them: Docker's CMD and the
// Kubernetes container's command as PID 1 (a PID namespace here: the test machine has no container
// engine), systemd's ExecStart as the process systemd signals. Each must make the supervisor the
// process that gets the signals: SIGHUP reloads with 0 failed requests, SIGTERM drains and stops
// it with exit code 0, and nothing warns that a package manager holds the signals.
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const { REPO, BIN, FIXTURE_APP, Service, childrenOf, descendantsOf, tempDir, waitFor, waitUntilGone, writeRelease, sleep } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')
const { freePort } = require('../tools/free-port')

const PLUGIN = { idleGrace: 300, drainTimeout: 5000, readyTimeout: 20000, probation: 500 }
const example = (file) => fs.readFileSync(path.join(REPO, 'examples', file), 'utf8')

/** An app directory as the image has it: app.js, and the package's bin in node_modules/.bin. */
function appDir (t) {
  const dir = tempDir(t)
  fs.copyFileSync(FIXTURE_APP, path.join(dir, 'app.js'))
  fs.mkdirSync(path.join(dir, 'node_modules', '.bin'), { recursive: true })
  fs.symlinkSync(BIN, path.join(dir, 'node_modules', '.bin', 'fastify-hot-reload'))
  fs.mkdirSync(path.join(dir, 'node_modules', 'fastify-hot-reload'))
  fs.symlinkSync(path.join(REPO, 'bin'), path.join(dir, 'node_modules', 'fastify-hot-reload', 'bin'))
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  return dir
}

const isSupervisor = (pid) => /fastify-hot-reload(\.js)?\0start\0/.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'))

/** Runs `command` as PID 1 of a new PID namespace in `dir`; resolves once it serves, with PID 1's pid out here. */
async function asPid1 (t, dir, command) {
  const service = Service.start(t, {
    cwd: dir,
    command: 'unshare',
    args: ['--pid', '--fork', '--mount-proc', ...command],
    // The control socket (named by --name) in a directory of this test's: other tests run supervisors named app too.
    env: { PORT: String(await freePort()), HOST: '127.0.0.1', XDG_RUNTIME_DIR: dir },
    trackLogPids: false // pids in the log are the namespace's
  })
  await service.generationServing(1)
  const pid1 = await waitFor(() => childrenOf(service.pid)[0]?.pid, 5000, 'PID 1 of the namespace')
  service.pids.add(pid1)
  return { service, pid1 }
}

/** SIGHUP to `pid` reloads twice under keep-alive load with 0 failed; SIGTERM then stops it all with 0. */
async function reloadsAndStops (t, dir, service, pid) {
  t.ok(isSupervisor(pid), 'the process that gets the signals is the supervisor')
  const url = await service.listening()
  const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10, keepAlive: true })
  await sleep(300)
  for (let version = 2; version <= 3; version++) {
    writeRelease(dir, { version, plugin: PLUGIN })
    process.kill(pid, 'SIGHUP')
    await service.generationServing(version)
    await sleep(300)
  }
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed')
  t.ok(stats.versions[3] > 0, 'the newest release serves')
  const everything = [pid, ...descendantsOf(pid)]
  process.kill(pid, 'SIGTERM')
  t.same(await service.exit, { code: 0, signal: null }, 'SIGTERM: exit code 0')
  t.ok(service.find((l) => l.supervisor === 'stopped'), 'the supervisor drained and stopped')
  t.notOk(service.find((l) => l.hotReload === 'signals-blocked' || l.supervisor === 'signals-blocked'), 'no package manager holds the signals')
  for (const other of everything) await waitUntilGone(other, 10000)
}

test('examples/docker/Dockerfile: its CMD as PID 1', async (t) => {
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(example('docker/Dockerfile'))[1])
  const dir = appDir(t)
  const { service, pid1 } = await asPid1(t, dir, cmd.map((word) => word === 'node' ? process.execPath : word))
  await reloadsAndStops(t, dir, service, pid1)
})

test('examples/kubernetes/deployment.yaml: its container command as PID 1', async (t) => {
  const command = JSON.parse(/^\s*command: (\[.*\])$/m.exec(example('kubernetes/deployment.yaml'))[1])
  const dir = appDir(t)
  const { service, pid1 } = await asPid1(t, dir, command.map((word) => word === 'node' ? process.execPath : word))
  await reloadsAndStops(t, dir, service, pid1)
})

test('examples/systemd/app.service: its ExecStart is the process systemd signals', async (t) => {
  const words = /^ExecStart=(.*)$/m.exec(example('systemd/app.service'))[1].split(' ')
  const dir = appDir(t)
  const service = Service.start(t, {
    cwd: dir,
    // This machine's node where the unit names /usr/bin/node.
    command: process.execPath,
    args: words.slice(1).map((word) => word === '/usr/bin/node' ? process.execPath : word),
    env: { PORT: String(await freePort()), XDG_RUNTIME_DIR: dir }
  })
  t.equal(words[0], '/usr/bin/node', 'node runs the supervisor itself')
  await service.generationServing(1)
  await reloadsAndStops(t, dir, service, service.pid)
})

test('examples/systemd/app.service with examples/deploy/deploy.sh: run as the unit says (its WorkingDirectory and Environment), a deploy switches `current` and its reload serves the new release', async (t) => {
  const { execFile } = require('node:child_process')
  const unit = example('systemd/app.service')
  const root = tempDir(t)
  // The unit's paths, moved under this test's directory.
  const here = (value) => value.replaceAll('/srv/app', root)
  const workingDirectory = here(/^WorkingDirectory=(.*)$/m.exec(unit)[1])
  // systemd gives the service no environment of its own but what the unit sets: no $PWD unless it does.
  const unitEnv = { PWD: undefined }
  for (const [, assignment] of unit.matchAll(/^Environment=(.*)$/gm)) {
    const equals = assignment.indexOf('=')
    unitEnv[assignment.slice(0, equals)] = here(assignment.slice(equals + 1))
  }
  const deploy = (source, name, reloadCommand) => new Promise((resolve) => {
    execFile('bash', [path.join(REPO, 'examples/deploy/deploy.sh'), source, name], {
      timeout: 60000,
      env: { ...process.env, APP_ROOT: root, SKIP_INSTALL: '1', RELOAD_CMD: reloadCommand, XDG_RUNTIME_DIR: root }
    }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }))
  })
  const first = await deploy(appDir(t), 'v1', 'true')
  t.equal(first.code, 0, 'the first release deployed', { stderr: first.stderr })
  const words = /^ExecStart=(.*)$/m.exec(unit)[1].split(' ')
  const service = Service.start(t, {
    cwd: workingDirectory,
    command: process.execPath,
    args: words.slice(1).map((word) => word === '/usr/bin/node' ? process.execPath : word),
    env: { ...unitEnv, PORT: String(await freePort()), XDG_RUNTIME_DIR: root }
  })
  await service.generationServing(1)
  const url = await service.listening()
  const second = appDir(t)
  writeRelease(second, { version: 2, plugin: PLUGIN })
  const deployed = await deploy(second, 'v2', `${process.execPath} ${BIN} reload --name app`)
  t.equal(deployed.code, 0, 'deploy.sh: the reload succeeded', { stdout: deployed.stdout, stderr: deployed.stderr })
  const answer = await (await fetch(url)).json()
  t.equal(answer.version, 2, 'the release `current` points to now serves, not the one it pointed to at start')
  process.kill(service.pid, 'SIGTERM')
  t.same(await service.exit, { code: 0, signal: null })
})

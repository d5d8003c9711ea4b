'use strict'
// Hardening: who may reach the supervisor's control socket, what the plugin exposes over HTTP,
// what the app's own child processes inherit, and what the logs print. Real processes, real
// sockets, a real second uid.
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const net = require('node:net')
const { execFile, execFileSync, spawn } = require('node:child_process')
const tap = require('tap')
const { test } = tap
const {
  REPO, BIN, Service, cli, startSupervised, servingTarget, tempDir, writeRelease, waitFor, waitUntilGone
} = require('../helpers/processes')
const common = require('./common')

// Two tests at a time: each waits mostly on boots, reloads and drains, so their waits overlap. Each
// has its own service, directory and port.
tap.jobs = 2

const APP = path.join(REPO, 'test/fixtures/minimal-app.js')
const PROBE = path.join(REPO, 'test/fixtures/fd-probe.js')
const OTHER_UID = 65534 // nobody
const PLUGIN = { idleGrace: 200, drainTimeout: 3000 }

const request = (target, method, route) => common.request(target, { method, path: route })

/** How this machine runs a command as another uid (we are root here), or null. */
function otherUidPrefix () {
  if (process.getuid() !== 0) return { prefix: null, why: `the tests run as uid ${process.getuid()}, not root: no way to become uid ${OTHER_UID}` }
  const candidates = [
    ['setpriv', `--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, '--clear-groups'],
    ['runuser', '-u', 'nobody', '--']
  ]
  for (const prefix of candidates) {
    try {
      const uid = execFileSync(prefix[0], [...prefix.slice(1), process.execPath, '-e', 'process.stdout.write(String(process.getuid()))'], { timeout: 10000, stdio: ['ignore', 'pipe', 'ignore'] })
      if (String(uid) === String(OTHER_UID)) return { prefix, why: null }
    } catch {}
  }
  return { prefix: null, why: 'neither setpriv nor runuser can switch to uid 65534 on this machine' }
}

/** Connects to a unix socket as uid 65534; resolves { connected } or { error: 'EACCES' ... }. */
function connectAsOther (prefix, socketPath) {
  const script = `require('node:net').connect(${JSON.stringify(socketPath)})
    .on('connect', function () { process.stdout.write(JSON.stringify({ connected: true, uid: process.getuid() })); this.destroy() })
    .on('error', (err) => process.stdout.write(JSON.stringify({ error: err.code, uid: process.getuid() })))`
  return new Promise((resolve) => {
    execFile(prefix[0], [...prefix.slice(1), process.execPath, '-e', script], { timeout: 10000 }, (err, stdout, stderr) => {
      try { resolve(JSON.parse(stdout)) } catch { resolve({ error: 'NO_ANSWER', detail: String(err && err.message) + stderr }) }
    })
  })
}

/** What a child process started by the test runner itself inherits (the baseline), with `extraFd` at fd 3. */
function probeHere (extraFd) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PROBE], { stdio: ['ignore', 'pipe', 'inherit', ...(extraFd === undefined ? [] : [extraFd])], timeout: 10000 })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (chunk) => { out += chunk })
    child.on('error', reject)
    child.on('close', () => { try { resolve(JSON.parse(out)) } catch (err) { reject(err) } })
  })
}

/**
 * The fds above stdio, each as its kind without the inode ("pipe:", "anon_inode:[eventpoll]"). The
 * file of NODE_EXTRA_CA_CERTS (tap sets it) is left out: Node 24 reads it while the probe starts,
 * in the probe itself, so it may or may not be open at that instant.
 */
function fdKinds (probe) {
  return Object.entries(probe.fds)
    .filter(([fd, link]) => Number(fd) > 2 && link !== process.env.NODE_EXTRA_CA_CERTS)
    .map(([, link]) => link.replace(/:\[\d+\]$/, ':')).sort()
}

function checkChild (t, probe, baseline, what) {
  // FASTIFY_HOT_RELOAD_KEEP_PID is the user's own setting (the tests set it), not a handoff variable.
  const handoff = probe.env.filter((key) => /^(LISTEN_|FASTIFY_HOT_RELOAD_)/.test(key) && key !== 'FASTIFY_HOT_RELOAD_KEEP_PID')
  t.same(handoff, [], `${what}: no LISTEN_* or FASTIFY_HOT_RELOAD_* handoff variable`)
  t.notOk(probe.env.includes('NODE_CHANNEL_FD'), `${what}: no IPC channel variable`)
  const sockets = Object.entries(probe.fds).filter(([fd, link]) => Number(fd) > 2 && link.startsWith('socket:'))
  t.same(sockets, [], `${what}: no socket among its fds above 2`)
  t.same(fdKinds(probe), fdKinds(baseline), `${what}: the same fds above 2 as a child of the test runner`)
}

/** A standalone service of the minimal app: reload by signalling the serving generation. */
async function startStandalone (t, { dir, env, plugin = PLUGIN } = {}) {
  dir = dir || tempDir(t)
  writeRelease(dir, { version: 1, plugin })
  const service = Service.start(t, { cwd: dir, script: APP, env, deadlineMs: 30000 })
  service.output = captureOutput(service)
  const target = await servingTarget(service)
  return { dir, service, target }
}

async function startMinimalSupervised (t, { dir, env, plugin = PLUGIN, args } = {}) {
  dir = dir || tempDir(t)
  writeRelease(dir, { version: 1, plugin })
  const supervised = startSupervised(t, { dir, env, args, script: APP })
  supervised.service.output = captureOutput(supervised.service)
  supervised.target = await servingTarget(supervised.service)
  await supervised.service.generationServing(1)
  return supervised
}

/** Everything a service printed, every generation and the supervisor, stdout and stderr, as raw text. */
function captureOutput (service) {
  let text = ''
  service.child.stdout.on('data', (chunk) => { text += chunk })
  service.child.stderr.on('data', (chunk) => { text += chunk })
  return () => text
}

test('the control socket is owner-only: mode 600 in a directory of mode 700, and another uid gets EACCES', async (t) => {
  const dir = tempDir(t)
  // Let other users walk down to our runtime directory: then only the supervisor's own modes stand in the way.
  fs.chmodSync(dir, 0o755)
  const runtime = path.join(dir, 'run')
  fs.mkdirSync(runtime, { mode: 0o755 })
  fs.chmodSync(runtime, 0o755)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  // The default location: $XDG_RUNTIME_DIR/fastify-hot-reload/<name>.sock, created by the supervisor.
  const { service } = await startMinimalSupervised(t, {
    dir,
    env: { XDG_RUNTIME_DIR: runtime },
    args: [BIN, 'start', '--name', 'secapp', '--ready-timeout', '10000', '--drain-timeout', '3000', '--', process.execPath, APP]
  })
  const controlDir = path.join(runtime, 'fastify-hot-reload')
  const control = path.join(controlDir, 'secapp.sock')
  await service.waitForLine((l) => l.supervisor === 'started' && l.controlPath === control, 10000, 'the control socket')
  const dirStat = fs.statSync(controlDir)
  t.equal((dirStat.mode & 0o777).toString(8), '700', 'the directory the supervisor created is mode 700')
  t.equal(dirStat.uid, process.getuid(), 'and ours')
  const socketStat = fs.lstatSync(control)
  t.ok(socketStat.isSocket(), 'the control path is a socket')
  t.equal((socketStat.mode & 0o777).toString(8), '600', 'the socket is mode 600')
  t.equal(socketStat.uid, process.getuid(), 'and ours')
  const status = await cli(['status', '--name', 'secapp', '--json'], { env: { ...process.env, XDG_RUNTIME_DIR: runtime } })
  t.equal(status.code, 0, 'its owner reaches it')
  t.equal(JSON.parse(status.stdout).generation, 1)

  const { prefix, why } = otherUidPrefix()
  if (prefix === null) {
    t.comment(`second-uid connect not run: ${why}; only the modes above were checked`)
  } else {
    t.comment(`as uid ${OTHER_UID} through ${prefix[0]}`)
    t.same(await connectAsOther(prefix, control), { error: 'EACCES', uid: OTHER_UID }, 'uid 65534 cannot connect: EACCES')
    // Each layer on its own: a directory others may traverse still leaves the socket's mode 600.
    fs.chmodSync(controlDir, 0o711)
    t.same(await connectAsOther(prefix, control), { error: 'EACCES', uid: OTHER_UID }, 'with the directory opened to 711, the socket mode alone refuses: EACCES')
    // The probe can succeed: with both opened up, uid 65534 connects (so the refusals above were the modes).
    fs.chmodSync(control, 0o666)
    t.same(await connectAsOther(prefix, control), { connected: true, uid: OTHER_UID }, 'control: with both modes opened, uid 65534 connects')
    fs.chmodSync(control, 0o600)
    fs.chmodSync(controlDir, 0o700)
  }

  // A second supervisor on the same path does not take the socket over.
  const second = await cli(['start', '--name', 'secapp', '--', process.execPath, APP], { cwd: dir, env: { ...process.env, XDG_RUNTIME_DIR: runtime }, timeout: 20000 })
  t.equal(second.code, 2, 'a second start on the same control path exits 2')
  t.match(second.stderr, /another supervisor is already running on .*secapp\.sock/)
  const after = await cli(['status', '--name', 'secapp', '--json'], { env: { ...process.env, XDG_RUNTIME_DIR: runtime } })
  t.equal(after.code, 0, 'the first supervisor still answers on its socket')
  t.equal(JSON.parse(after.stdout).pid, service.pid)
})

test('no reload or status route over HTTP: the plugin adds only its two probes, and none when they are off', async (t) => {
  const NOT_ROUTES = [
    ['POST', '/hot-reload'], ['GET', '/hot-reload'], ['GET', '/hot-reload/status'], ['POST', '/hot-reload/reload'],
    ['POST', '/reload'], ['GET', '/reload'], ['GET', '/status'], ['POST', '/admin/reload'], ['POST', '/health'],
    ['PUT', '/health'], ['DELETE', '/health/live'], ['POST', '/health/reload'], ['GET', '/health/status']
  ]
  const pluginRoutes = async (target) => (await request(target, 'GET', '/routes')).body.filter((r) => !r.own).map((r) => `${r.method} ${r.url}`).sort()
  const probe = async (t, target, mode) => {
    for (const [method, route] of NOT_ROUTES) {
      t.equal((await request(target, method, route)).status, 404, `${mode}: ${method} ${route} is 404`)
    }
    const served = await request(target, 'GET', '/')
    t.equal(served.body.generation, 1, `${mode}: none of them started a reload (still generation 1)`)
  }

  const standalone = await startStandalone(t)
  t.same(await pluginRoutes(standalone.target), ['GET /health', 'GET /health/live', 'HEAD /health', 'HEAD /health/live'], 'standalone, default options: only the probes')
  t.equal((await request(standalone.target, 'GET', '/health')).status, 200)
  await probe(t, standalone.target, 'standalone')
  t.notOk(standalone.service.find((l) => l.hotReloadEvent === 'reloading'), 'no reload was started')

  const supervised = await startMinimalSupervised(t)
  t.same(await pluginRoutes(supervised.target), ['GET /health', 'GET /health/live', 'HEAD /health', 'HEAD /health/live'], 'supervised worker, default options: only the probes')
  await probe(t, supervised.target, 'supervised')
  t.notOk(supervised.service.find((l) => l.supervisor === 'generation-starting' && l.generation === 2), 'the supervisor started no generation 2')

  const off = await startStandalone(t, { plugin: { ...PLUGIN, healthPath: false, livenessPath: false } })
  t.same(await pluginRoutes(off.target), [], 'healthPath: false, livenessPath: false: the plugin adds no route at all')
  t.equal((await request(off.target, 'GET', '/health')).status, 404)
  t.equal((await request(off.target, 'GET', '/health/live')).status, 404)
})

test("the app's own children inherit no listening socket and no handoff variable (generations 1 and 2, standalone and supervised)", async (t) => {
  const baseline = await probeHere()
  t.comment(`baseline child fds: ${JSON.stringify(baseline.fds)}`)
  t.same(Object.entries(baseline.fds).filter(([fd, link]) => Number(fd) > 2 && link.startsWith('socket:')), [], 'baseline: a child of the test runner has no socket above fd 2')
  // Control: a listening socket that does reach a child is seen by the probe.
  const server = await new Promise((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => resolve(s)) })
  t.teardown(() => server.close())
  const leaked = await probeHere(server._handle.fd)
  t.match(leaked.fds['3'], /^socket:\[\d+\]$/, 'control: a socket passed at fd 3 shows in the probe')
  t.not(fdKinds(leaked).join(), fdKinds(baseline).join(), 'control: and the fd comparison tells it apart')

  const standalone = await startStandalone(t, { env: { SECRET_TOKEN: 'x' } })
  const first = (await request(standalone.target, 'GET', '/spawn-child')).body
  t.equal(first.parent.generation, 1)
  checkChild(t, first.child, baseline, 'standalone generation 1')
  process.kill(first.parent.pid, 'SIGUSR2')
  await standalone.service.generationServing(2)
  const second = (await request(standalone.target, 'GET', '/spawn-child')).body
  t.equal(second.parent.generation, 2, 'answered by generation 2, which adopted the inherited socket')
  t.ok(standalone.service.find((l) => l.pid === second.parent.pid && l.hotReload === 'adopted-socket'), 'generation 2 adopted an inherited fd')
  checkChild(t, second.child, baseline, 'standalone generation 2')
  t.ok(second.child.env.includes('SECRET_TOKEN'), 'the rest of the environment does reach the child')

  const supervised = await startMinimalSupervised(t)
  const one = (await request(supervised.target, 'GET', '/spawn-child')).body
  t.equal(one.parent.generation, 1)
  checkChild(t, one.child, baseline, 'supervised generation 1')
  const reload = await cli(['reload', '--control', supervised.control])
  t.equal(reload.code, 0, 'supervised reload to generation 2')
  await supervised.service.generationServing(2)
  const two = (await request(supervised.target, 'GET', '/spawn-child')).body
  t.equal(two.parent.generation, 2)
  checkChild(t, two.child, baseline, 'supervised generation 2')
})

test('logs never print the environment: a secret in it appears in no output through reload, failed reload and shutdown', async (t) => {
  const secret = `fhr-secret-${crypto.randomBytes(12).toString('hex')}`
  // Trace level: whatever the library logs at any level is printed.
  const env = { SECRET_TOKEN: secret, LOG_LEVEL: 'trace' }

  const standalone = await startStandalone(t, { env })
  const standaloneOutput = standalone.service.output
  const gen1 = (await request(standalone.target, 'GET', '/')).body.pid
  process.kill(gen1, 'SIGUSR2')
  const gen2 = await standalone.service.generationServing(2)
  // Generation 1 finishes its drain first: the shutdown below is then the service's, not a reload's.
  await waitUntilGone(gen1)
  t.ok((await request(standalone.target, 'GET', '/spawn-child')).body.child.env.includes('SECRET_TOKEN'), 'standalone: the secret is in the serving generation\'s environment')
  writeRelease(standalone.dir, { version: 3, throwAtBoot: true })
  process.kill(gen2, 'SIGUSR2')
  await standalone.service.waitForEvent('reloadFailed', () => true, 15000)
  process.kill(gen2, 'SIGTERM')
  await waitUntilGone(gen2)
  await waitFor(() => standalone.service.alive().length === 0, 10000, 'every standalone generation to exit')
  await standalone.service.closed
  t.ok(standaloneOutput().includes('release 3 is broken'), 'standalone: the failed successor\'s output was captured')
  t.ok(standaloneOutput().includes('drained after'), 'standalone: the shutdown was logged')
  t.notOk(standaloneOutput().includes(secret), 'standalone: the secret appears in no output')

  const supervised = await startMinimalSupervised(t, { env })
  const supervisedOutput = supervised.service.output
  writeRelease(supervised.dir, { version: 2, plugin: PLUGIN })
  const good = await cli(['reload', '--control', supervised.control, '--json'], { env: { ...process.env, ...env } })
  t.equal(good.code, 0, 'supervised: reload to generation 2')
  t.ok((await request(supervised.target, 'GET', '/spawn-child')).body.child.env.includes('SECRET_TOKEN'), 'supervised: the secret is in the worker\'s environment')
  writeRelease(supervised.dir, { version: 3, throwAtBoot: true })
  const bad = await cli(['reload', '--control', supervised.control, '--json'], { env: { ...process.env, ...env } })
  t.equal(bad.code, 1, 'supervised: the broken release fails to reload')
  process.kill(supervised.service.pid, 'SIGTERM')
  t.same(await supervised.service.closed, { code: 0, signal: null }, 'supervised: graceful shutdown')
  t.ok(supervisedOutput().includes('release 3 is broken'), 'supervised: the failed worker\'s output was captured')
  t.ok(supervisedOutput().includes('supervisor: stopped'), 'supervised: the shutdown was logged')
  t.notOk(supervisedOutput().includes(secret), 'supervised: the secret appears in no output of the supervisor or its workers')
  for (const [what, out] of [['reload', good], ['failed reload', bad]]) {
    t.notOk(out.stdout.includes(secret) || out.stderr.includes(secret), `the ${what} command does not print it either`)
  }
})

'use strict'
// An environment that lies: systemd's LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES that do not match
// the fds really passed, a control socket path that someone else holds, a pid file nobody can
// write. Both as a standalone app (the plugin reads socket activation itself) and under
// `fastify-hot-reload start`. Each case refuses with a message naming the variable or option and
// what was expected, and never listens somewhere else instead.
// (A malformed handoff from a previous generation, FASTIFY_HOT_RELOAD_PARENT set, is in
// bad-input.test.js; wrong start arguments, a control path that is a regular file or in an open
// directory, and a missing pid-file directory are in supervisor.test.js.)
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { BIN, FIXTURE_APP, Service, cli, tempDir, writeRelease } = require('../helpers/processes')

// Two tests at a time: each waits for a process that refuses to start, or for one boot, so their
// waits overlap. Each has its own directory, sockets and ports.
tap.jobs = 2

const OTHER_UID = 65534
// systemd sets LISTEN_PID to the pid it execs; a shell that execs node keeps its pid.
const AS_ACTIVATED = ['-c', 'export LISTEN_PID=$$; exec "$0" "$@"']

/** The JSON log lines in a command's output (the rest is its messages to the user). */
function logLines (text) {
  return text.split('\n').flatMap((line) => { try { return [JSON.parse(line)] } catch { return [] } }).filter((line) => typeof line === 'object' && line !== null)
}

/** A line that says a process started: Fastify's "Server listening at", or the supervisor starting a generation. */
const startedSomething = (l) => l.supervisor === 'generation-starting' || /Server listening at/.test(l.msg || '')

function output (service) {
  return service.lines.map((l) => l.raw || [l.msg, l.err && (l.err.message || l.err)].filter(Boolean).join(' ')).join('\n')
}

function listeningSocket (t) {
  return new Promise((resolve) => {
    const server = net.createServer((socket) => socket.destroy())
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve(server))
    t.teardown(() => server.close())
  })
}

/** A connected (not listening) TCP socket, and its fd. */
async function connectedSocket (t) {
  const server = await listeningSocket(t)
  const client = net.connect(server.address().port, '127.0.0.1')
  await new Promise((resolve, reject) => client.once('connect', resolve).once('error', reject))
  t.teardown(() => client.destroy())
  return client
}

function regularFileFd (t, dir) {
  const fd = fs.openSync(path.join(dir, 'not-a-socket'), 'w')
  t.teardown(() => fs.closeSync(fd))
  return fd
}

/**
 * Starts the fixture app (standalone) or the supervisor running it, with `env` and `fds` at 3, 4, ...
 * (null leaves that fd closed); `listenPid: 'self'` sets LISTEN_PID to the process's own pid.
 */
function startActivated (t, mode, { env = {}, fds = [], listenPid = 'self', release = { version: 1 } }) {
  const dir = tempDir(t)
  writeRelease(dir, release)
  const target = mode === 'standalone'
    ? [process.execPath, FIXTURE_APP]
    : [process.execPath, BIN, 'start', '--control', path.join(dir, 'ctl', 'app.sock'), '--ready-timeout', '10000', '--', process.execPath, FIXTURE_APP]
  const stdio = ['ignore', 'pipe', 'pipe', ...fds.map((fd) => fd === null ? 'ignore' : fd)]
  const service = listenPid === 'self'
    ? Service.start(t, { cwd: dir, env, command: 'sh', args: [...AS_ACTIVATED, ...target], stdio, deadlineMs: 20000 })
    : Service.start(t, { cwd: dir, env: { ...env, LISTEN_PID: String(listenPid) }, command: target[0], args: target.slice(1), stdio, deadlineMs: 20000 })
  return { dir, service, control: path.join(dir, 'ctl', 'app.sock') }
}

async function refused (t, mode, options, expected, what) {
  const { service, control } = startActivated(t, mode, options)
  const exit = await service.closed
  const text = output(service)
  t.not(exit.code, 0, `${mode}, ${what}: exits non-zero`)
  if (mode === 'supervised') t.equal(exit.code, 2, `${mode}, ${what}: exit code 2 (usage)`)
  t.match(text, expected, `${mode}, ${what}: the message names the variable and what was expected`)
  t.notOk(service.find(startedSomething), `${mode}, ${what}: nothing was started or bound`)
  if (mode === 'supervised') t.notOk(fs.existsSync(control), `${mode}, ${what}: no control socket left`)
}

function get (port, route = '/') {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: route, agent: false, timeout: 10000 }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode, body: JSON.parse(body) }))
    }).on('error', reject).on('timeout', function () { this.destroy(new Error('no answer within 10 s')) })
  })
}

for (const mode of ['standalone', 'supervised']) {
  test(`${mode}: socket activation variables that do not match the fds passed are refused`, async (t) => {
    const dir = tempDir(t)
    const server = await listeningSocket(t)
    const socket = server._handle.fd
    await refused(t, mode, { env: { LISTEN_FDS: '3' }, fds: [socket] },
      /LISTEN_FDS: expected 3 listening socket\(s\) at fd 3 to 5, but fd 4 is not (open|a socket)/, 'LISTEN_FDS=3 with 1 socket')
    await refused(t, mode, { env: { LISTEN_FDS: '2' }, fds: [null, socket] },
      /LISTEN_FDS: expected 2 listening socket\(s\) at fd 3 to 4, but fd 3 is not (open|a socket)/, 'fd 3 closed')
    await refused(t, mode, { env: { LISTEN_FDS: '1' }, fds: [regularFileFd(t, dir)] },
      /LISTEN_FDS: expected 1 listening socket\(s\) at fd 3, but fd 3 is not a socket/, 'fd 3 a regular file')
    const client = await connectedSocket(t)
    await refused(t, mode, { env: { LISTEN_FDS: '1' }, fds: [client._handle.fd] },
      /LISTEN_FDS: expected 1 listening socket\(s\) at fd 3, but fd 3 is not a listening TCP or unix stream socket/, 'fd 3 a connected socket')
    await refused(t, mode, { env: { LISTEN_FDS: '2', LISTEN_FDNAMES: 'http' }, fds: [socket, socket] },
      /LISTEN_FDNAMES: expected 2 names separated by ":" \(one per LISTEN_FDS socket\), got "http"/, 'LISTEN_FDNAMES with 1 name for 2 fds')
    await refused(t, mode, { env: { LISTEN_FDS: '1', LISTEN_FDNAMES: 'http:https' }, fds: [socket] },
      /LISTEN_FDNAMES: expected 1 names separated by ":" \(one per LISTEN_FDS socket\), got "http:https"/, 'LISTEN_FDNAMES with 2 names for 1 fd')
    for (const value of ['abc', '-1', '']) {
      await refused(t, mode, { env: { LISTEN_FDS: value }, fds: [socket] },
        new RegExp(`LISTEN_FDS: expected the number of sockets systemd passed, got "${value}"`), `LISTEN_FDS=${JSON.stringify(value)}`)
    }
  })

  test(`${mode}: LISTEN_PID of another process: the sockets are not ours and are left alone (systemd convention)`, async (t) => {
    const server = await listeningSocket(t)
    const inherited = server.address().port
    let reachedTest = 0
    server.on('connection', () => { reachedTest++ })
    // LISTEN_PID names the test runner: valid fds, but for someone else.
    const { service } = startActivated(t, mode, { env: { LISTEN_FDS: '1', PORT: '0' }, fds: [server._handle.fd], listenPid: process.pid })
    const url = await service.listening()
    if (mode === 'supervised') await service.waitForLine((l) => (l.hotReloadEvent === 'serving' && l.generation === 1))
    const own = Number(url.port)
    t.not(own, inherited, 'the app listens where it was told to (PORT=0), not on the inherited socket')
    t.equal((await get(own)).status, 200, 'and serves there')
    t.notOk(service.find((l) => l.hotReload === 'adopted-socket'), 'no inherited socket adopted')
    if (mode === 'supervised') {
      const started = service.find((l) => l.supervisor === 'started')
      t.equal(started.sockets, 0, 'the supervisor took no socket from the environment')
    }
    // A connection to the inherited port is the test runner's alone.
    await new Promise((resolve, reject) => net.connect(inherited, '127.0.0.1').once('connect', function () { this.destroy(); resolve() }).once('error', reject))
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.equal(reachedTest, 1, 'a connection to the inherited port reaches its owner, not the app')
  })
}

test('a control socket path that someone else holds is refused and left as it was', async (t) => {
  const dir = tempDir(t)
  // A live socket owned by another uid, in a private directory of ours.
  const ctl = path.join(dir, 'ctl')
  fs.mkdirSync(ctl, { mode: 0o700 })
  const theirs = path.join(ctl, 'app.sock')
  const holder = net.createServer((socket) => socket.end('theirs\n'))
  await new Promise((resolve) => holder.listen(theirs, resolve))
  t.teardown(() => holder.close())
  fs.chownSync(theirs, OTHER_UID, OTHER_UID)
  const foreignSocket = await cli(['start', '--control', theirs, FIXTURE_APP], { cwd: dir, timeout: 20000 })
  t.equal(foreignSocket.code, 2)
  t.match(foreignSocket.stderr, /control socket: .*app\.sock belongs to uid 65534, not to us/)
  t.equal(fs.lstatSync(theirs).uid, OTHER_UID, 'the socket is still there, still theirs')
  const answer = await new Promise((resolve, reject) => {
    let text = ''
    net.connect(theirs).setEncoding('utf8').on('data', (chunk) => { text += chunk }).on('end', () => resolve(text)).on('error', reject)
  })
  t.equal(answer, 'theirs\n', 'and its owner still answers on it')

  // A private directory owned by another uid.
  const foreignDir = path.join(dir, 'foreign')
  fs.mkdirSync(foreignDir, { mode: 0o700 })
  fs.chownSync(foreignDir, OTHER_UID, OTHER_UID)
  const notOurDir = await cli(['start', '--control', path.join(foreignDir, 'app.sock'), FIXTURE_APP], { cwd: dir, timeout: 20000 })
  t.equal(notOurDir.code, 2)
  t.match(notOurDir.stderr, /control socket: directory .*foreign belongs to uid 65534, not to us \(uid 0\)|belongs to uid 65534, not to us/)
  t.same(fs.readdirSync(foreignDir), [], 'nothing was created in it')

  // A symlink standing for the directory, or for the socket.
  fs.mkdirSync(path.join(dir, 'real'), { mode: 0o700 })
  fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'link'))
  const linkedDir = await cli(['start', '--control', path.join(dir, 'link', 'app.sock'), FIXTURE_APP], { cwd: dir, timeout: 20000 })
  t.equal(linkedDir.code, 2)
  t.match(linkedDir.stderr, /control socket: .*link is not a directory/)
  t.same(fs.readdirSync(path.join(dir, 'real')), [], 'nothing was created behind the symlink')
  fs.symlinkSync(theirs, path.join(ctl, 'linked.sock'))
  const linkedSocket = await cli(['start', '--control', path.join(ctl, 'linked.sock'), FIXTURE_APP], { cwd: dir, timeout: 20000 })
  t.equal(linkedSocket.code, 2)
  t.match(linkedSocket.stderr, /control socket: .*linked\.sock exists and is not a socket; not touching it/)
  t.ok(fs.lstatSync(path.join(ctl, 'linked.sock')).isSymbolicLink(), 'the symlink is left alone')

  // A regular file where the directory should be.
  fs.writeFileSync(path.join(dir, 'file'), 'x')
  const fileAsDir = await cli(['start', '--control', path.join(dir, 'file', 'app.sock'), FIXTURE_APP], { cwd: dir, timeout: 20000 })
  t.equal(fileAsDir.code, 2)
  t.match(fileAsDir.stderr, /control socket: .*file is not a directory/)
  for (const run of [foreignSocket, notOurDir, linkedDir, linkedSocket, fileAsDir]) {
    t.notOk(logLines(run.stdout + '\n' + run.stderr).find(startedSomething), 'nothing was started')
  }
})

test('a pid file where nobody can create one is refused at once, naming the option (root too)', async (t) => {
  const dir = tempDir(t)
  fs.writeFileSync(path.join(dir, 'file'), 'x')
  // Root passes every permission check; a path under a regular file, or in /proc, still refuses new files.
  const places = [[path.join(dir, 'file', 'app.pid'), /file is not a directory/], ['/proc/fhr-test-app.pid', /directory \/proc is not writable \(E[A-Z]+\)/]]
  for (const [pidFile, why] of places) {
    const started = Date.now()
    const control = path.join(dir, 'ctl', 'app.sock')
    const supervised = await cli(['start', '--control', control, '--pid-file', pidFile, FIXTURE_APP], { cwd: dir, timeout: 20000 })
    t.equal(supervised.code, 2, `start --pid-file ${pidFile}: exit 2 (not a process left running)`)
    t.ok(Date.now() - started < 15000, 'at once')
    t.match(supervised.stderr, new RegExp(`--pid-file: .*${why.source}; expected a path in a directory we can write`))
    t.notOk(fs.existsSync(control), 'no control socket left')
    t.notOk(logLines(supervised.stdout + '\n' + supervised.stderr).find(startedSomething), 'nothing was started')

    const appDir = tempDir(t)
    writeRelease(appDir, { version: 1, plugin: { pidFile } })
    const standalone = Service.start(t, { cwd: appDir, deadlineMs: 20000 })
    const exit = await standalone.closed
    t.not(exit.code, 0, `standalone pidFile ${pidFile}: the app does not start`)
    t.match(output(standalone), new RegExp(`option "pidFile" must be a path in a directory we can write \\(.*${why.source}\\)`))
    t.notMatch(output(standalone), /Server listening at/, 'and binds nothing')
  }
})

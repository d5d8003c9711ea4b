'use strict'
// Operating a standalone service: its pid file, `fastify-hot-reload reload --pid-file` and sd_notify.
const fs = require('node:fs')
const path = require('node:path')
const { execFile } = require('node:child_process')
const tap = require('tap')
const { test } = tap
const { Service, REPO, tempDir, writeRelease, waitFor, waitUntilGone, notifyReceiver } = require('./helpers/processes')

// Two tests at a time: each waits mostly on boots and reloads, so their waits overlap. Each has its
// own service, directory and port.
tap.jobs = 2

const BIN = path.join(REPO, 'bin/fastify-hot-reload.js')

function cli (args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60000 }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }))
  })
}

const readPid = (file) => Number(fs.readFileSync(file, 'utf8').trim())

/**
 * `reload --pid-file --json` of a good release: exit 0, the expected answer, then the pid file names
 * the new generation and the old one is gone. Returns the answer.
 */
async function goodReloadByPidFile (t, pidFile, expected) {
  const answer = await cli(['reload', '--pid-file', pidFile, '--json'])
  t.equal(answer.code, 0, `exit 0 on the good release (generation ${expected.generation})`)
  const result = JSON.parse(answer.stdout)
  t.match(result, { ok: true, ...expected })
  await waitFor(() => readPid(pidFile) === result.pid, 5000, 'the pid file to name the new generation')
  await waitUntilGone(expected.fromPid)
  return result
}

/** A standalone service with a pid file (`plugin` adds options), serving release 1 once this resolves. */
async function serviceWithPidFile (t, plugin = {}) {
  const dir = tempDir(t)
  const pidFile = path.join(dir, 'app.pid')
  const options = { pidFile, ...plugin }
  writeRelease(dir, { version: 1, plugin: options })
  const service = Service.start(t, { cwd: dir })
  await service.listening()
  await waitFor(() => fs.existsSync(pidFile), 5000, 'the pid file')
  return { dir, pidFile, plugin: options, service }
}

test('pid file, and a reload command that answers for a standalone service', async (t) => {
  // A short probation: the old generation is gone only once its successor's probation is over (2 s by default).
  const { dir, pidFile, plugin, service } = await serviceWithPidFile(t, { idleGrace: 300, readyTimeout: 20000, probation: 300 })
  t.equal(readPid(pidFile), service.pid, 'the pid file names the serving generation')
  writeRelease(dir, { version: 2, plugin })
  const result = await goodReloadByPidFile(t, pidFile, { generation: 2, fromPid: service.pid })
  writeRelease(dir, { version: 3, throwAtBoot: true })
  const broken = await cli(['reload', '--pid-file', pidFile])
  t.equal(broken.code, 1, 'exit 1 on a broken release')
  t.match(broken.stderr, /reload failed: .*exited with code 1.*generation 2 \(pid \d+\) keeps serving/, 'the failure goes to stderr')
  t.equal(broken.stdout, '', 'and nothing to stdout')
  t.equal(readPid(pidFile), result.pid, 'the pid file still names generation 2')
  // At once after the failure, from the same pid: the answer is this reload's, not the failure's record.
  writeRelease(dir, { version: 4, plugin })
  const fixedResult = await goodReloadByPidFile(t, pidFile, { generation: 3, fromPid: result.pid })
  process.kill(fixedResult.pid, 'SIGTERM')
  await waitUntilGone(fixedResult.pid)
  t.notOk(fs.existsSync(pidFile), 'a graceful shutdown removes the pid file')
  const none = await cli(['reload', '--pid-file', pidFile])
  t.equal(none.code, 2)
  t.match(none.stderr, /does not hold a pid/)
  const noneAsJson = await cli(['reload', '--pid-file', pidFile, '--json'])
  t.equal(noneAsJson.code, 2)
  t.match(JSON.parse(noneAsJson.stdout), { ok: false, error: { code: 'HOT_RELOAD_CONTROL_FAILED', message: /does not hold a pid/ } }, 'with --json, said as JSON too')
})

test('reload --pid-file --signal SIGHUP to a service that does not reload on it, which ends it: exit 1 at once, saying so, not after --timeout', async (t) => {
  const { pidFile, service } = await serviceWithPidFile(t)
  const startedAt = Date.now()
  const answer = await cli(['reload', '--pid-file', pidFile, '--signal', 'SIGHUP', '--timeout', '30000', '--json'])
  t.equal(answer.code, 1, 'exit 1')
  t.match(JSON.parse(answer.stdout), { ok: false, pid: service.pid, error: { code: 'HOT_RELOAD_NOT_SERVING', message: /exited after SIGHUP without a record of a reload/ } })
  t.ok(Date.now() - startedAt < 10000, `answered in ${Date.now() - startedAt} ms, not at the 30 s timeout`)
  t.equal((await service.exit).signal, 'SIGHUP', 'SIGHUP ended it, as Node does for a signal nobody takes')
})

test('reload --pid-file --timeout that ends before the reload does: exit 1, on stderr, naming the record that will tell', async (t) => {
  const { dir, pidFile, plugin, service } = await serviceWithPidFile(t, { idleGrace: 300, readyTimeout: 20000, probation: 300 })
  writeRelease(dir, { version: 2, plugin, bootDelay: 3000 })
  const answer = await cli(['reload', '--pid-file', pidFile, '--timeout', '500'])
  t.equal(answer.code, 1, 'exit 1')
  t.equal(answer.stdout, '', 'nothing on stdout')
  t.match(answer.stderr, `it may still finish (its record, ${pidFile}.reload.json, tells)`, 'where to look: `status` does not read pid files')
  t.notMatch(answer.stderr, /keeps serving/, 'it does not claim to know what serves')
  await service.generationServing(2, 30000)
})

test('reload --pid-file --wait-probation: exit 0 once a good release has served its probation; exit 1 (HOT_RELOAD_ROLLED_BACK) for one that crashes within it, naming the generation that serves again', async (t) => {
  const PROBATION = 1500
  const { dir, pidFile, plugin, service } = await serviceWithPidFile(t, { idleGrace: 300, readyTimeout: 20000, probation: PROBATION })
  writeRelease(dir, { version: 2, plugin })
  const startedAt = Date.now()
  const good = await cli(['reload', '--pid-file', pidFile, '--wait-probation', '--json'])
  t.equal(good.code, 0, 'a good release: exit 0')
  const second = JSON.parse(good.stdout)
  t.match(second, { ok: true, generation: 2, probationMs: PROBATION })
  t.ok(Date.now() - startedAt >= PROBATION, 'after its probation')
  // Ready, then dead within the probation: its predecessor serves again.
  writeRelease(dir, { version: 3, plugin, exitAfterServingMs: 300 })
  const bad = await cli(['reload', '--pid-file', pidFile, '--wait-probation', '--json'])
  t.equal(bad.code, 1, 'a release that crashes within its probation: exit 1')
  t.match(JSON.parse(bad.stdout), { ok: false, generation: 2, pid: second.pid, error: { code: 'HOT_RELOAD_ROLLED_BACK', message: /generation 3 was rolled back/ } }, 'naming the generation that serves again')
  t.equal(readPid(pidFile), second.pid, 'which the pid file names')
  const text = await cli(['reload', '--pid-file', pidFile, '--wait-probation'])
  t.equal(text.code, 1)
  t.match(text.stderr, /reload failed: generation \d+ was rolled back within the probation: .*\(HOT_RELOAD_ROLLED_BACK\); generation 2 \(pid \d+\) keeps serving/, 'and says so in words')
})

test('a pid file in a directory that does not exist is a clear error', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: { pidFile: path.join(dir, 'missing', 'app.pid') } })
  const service = Service.start(t, { cwd: dir })
  const exit = await service.closed
  t.not(exit.code, 0)
  t.ok(service.find((l) => /option "pidFile" must be a path in a directory we can write/.test(l.err || '')), 'names pidFile')
})

test('sd_notify in standalone mode: READY, RELOADING, MAINPID of the successor, STOPPING', async (t) => {
  const dir = tempDir(t)
  const { socketPath: notifySocket, messages } = await notifyReceiver(t, dir)
  // A short probation: the old generation is gone only once its successor's probation is over (2 s by default).
  writeRelease(dir, { version: 1, plugin: { idleGrace: 300, probation: 300 } })
  const service = Service.start(t, { cwd: dir, env: { NOTIFY_SOCKET: notifySocket } })
  await service.listening()
  await waitFor(() => messages().some((m) => m.includes('READY=1')), 5000, 'READY=1')
  process.kill(service.pid, 'SIGUSR2')
  const next = await service.generationServing(2)
  await waitFor(() => messages().some((m) => m.includes(`MAINPID=${next}`)), 5000, 'MAINPID of the successor')
  await waitUntilGone(service.pid)
  process.kill(next, 'SIGTERM')
  await waitUntilGone(next)
  await waitFor(() => messages().some((m) => m.includes('STOPPING=1')), 5000, 'STOPPING=1')
  const all = messages()
  t.comment(all.join('\n'))
  const index = (needle) => all.findIndex((m) => m.includes(needle))
  t.ok(index('READY=1') < index('RELOADING=1'), 'READY before RELOADING')
  t.match(all[index('RELOADING=1')], /MONOTONIC_USEC=\d+/)
  t.ok(index('RELOADING=1') < index(`MAINPID=${next}`), 'then the successor as MAINPID')
  t.match(all[index(`MAINPID=${next}`)], /READY=1/, 'with READY=1')
  t.ok(index(`MAINPID=${next}`) < index('STOPPING=1'), 'STOPPING last')
})

test('systemd socket activation in standalone mode: adopted, and reloads with 0 failed requests', async (t) => {
  const dir = tempDir(t)
  const port = await new Promise((resolve) => {
    const probe = require('node:net').createServer().listen(0, '127.0.0.1', () => { const p = probe.address().port; probe.close(() => resolve(p)) })
  })
  // A short probation: each reload waits for the old generation to be gone (after its successor's probation).
  writeRelease(dir, { version: 1, plugin: { idleGrace: 300, probation: 300 }, listen: { port, host: '127.0.0.1' } })
  const service = Service.start(t, {
    cwd: dir,
    command: 'systemd-socket-activate',
    args: ['-l', `127.0.0.1:${port}`, process.execPath, require('./helpers/processes').FIXTURE_APP]
  })
  await service.waitForLine((l) => /Listening on/.test(l.raw || ''), 10000, 'systemd-socket-activate to listen')
  const { startLoad } = require('./helpers/load')
  const load = startLoad(t, { host: '127.0.0.1', port }, { connections: 10, keepAlive: false })
  await service.listening()
  // Fastify's "listening" line and our onListen hook's line come in either order.
  const adopted = await service.waitForLine((l) => l.hotReload === 'adopted-socket' && l.address.startsWith('127.0.0.1:'), 10000, 'the adoption to be logged')
  t.equal(adopted.pid, service.pid, 'the first generation adopted the activated socket')
  if (typeof process.execve === 'function') {
    // systemd-socket-activate passes no other variable: keepPid would apply, but the activated fds
    // are close-on-exec in Node, so the process stays itself and says why.
    t.ok(service.find((l) => l.hotReload === 'pid-not-kept' && /socket activation/.test(l.reason)), 'keepPid stood aside for socket activation, with a warning')
  }
  let pid = service.pid
  for (const version of [2, 3]) {
    writeRelease(dir, { version, plugin: { idleGrace: 300, probation: 300 }, listen: { port, host: '127.0.0.1' } })
    process.kill(pid, 'SIGUSR2')
    const next = await service.generationServing(version)
    await waitUntilGone(pid)
    pid = next
  }
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed')
  t.equal(stats.non2xx, 0)
  t.ok(stats.versions[3] > 0, 'the last release serves')
})

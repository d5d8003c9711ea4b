'use strict'
// Bad options and a malformed handoff stop the app at boot with an error that names the problem,
// never a silent bind somewhere else.
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { Service, tempDir, writeRelease } = require('./helpers/processes')

// Two tests at a time: each waits for apps that fail at boot, so their waits overlap. Each has
// its own directory and sockets.
tap.jobs = 2

function output (service) {
  return service.lines.map((l) => l.raw || [l.msg, l.err].filter(Boolean).join(' ')).join('\n')
}

async function bootFails (t, { plugin, env, stdio }, expected) {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin })
  const service = Service.start(t, { cwd: dir, env, stdio })
  const exit = await service.closed
  t.not(exit.code, 0, 'the app did not start')
  t.match(output(service), expected, 'the error names the problem')
  return service
}

function listeningSocket (t, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.listen({ host, port: 0 }, () => resolve(server))
    t.teardown(() => server.close())
  })
}

const handoff = (extra) => ({ FASTIFY_HOT_RELOAD_PARENT: String(process.pid), FASTIFY_HOT_RELOAD_GENERATION: '2', ...extra })

test('invalid plugin options are rejected at registration, naming the option', async (t) => {
  await bootFails(t, { plugin: { readyTimeout: -5 } }, /option "readyTimeout" must be a whole number of milliseconds/)
  await bootFails(t, { plugin: { reloadSignals: ['SIGFOO'] } }, /option "reloadSignals" must be .*signal names.*"SIGFOO"/)
  await bootFails(t, { plugin: { healthPath: 'health' } }, /option "healthPath" must be a path starting with "\/"/)
  await bootFails(t, { plugin: { reloadTimeout: 5 } }, /option "reloadTimeout" must be one of .*unknown option/)
})

test('a malformed LISTEN_FDS is a clear error', async (t) => {
  await bootFails(t, { env: handoff({ LISTEN_FDS: 'abc' }) }, /LISTEN_FDS: expected the number of inherited sockets/)
  await bootFails(t, { env: handoff({ LISTEN_FDS: '2', LISTEN_FDNAMES: '127.0.0.1%3A3000' }) }, /LISTEN_FDNAMES: expected 2 names/)
  await bootFails(t, { env: handoff({ LISTEN_FDS: '1', LISTEN_FDNAMES: 'http' }) }, /LISTEN_FDNAMES: name 1 \("http"\) is not an encoded listening address/)
  await bootFails(t, { env: { ...handoff({ LISTEN_FDS: '1', LISTEN_FDNAMES: '127.0.0.1%3A3000' }), FASTIFY_HOT_RELOAD_GENERATION: 'one' } }, /FASTIFY_HOT_RELOAD_GENERATION: expected a whole number/)
})

test('an inherited fd that is not a socket is a clear error', async (t) => {
  // Nothing inherited at fd 3: Node's own start-up fds (epoll, eventfd) sit there, or nothing.
  await bootFails(t, { env: handoff({ LISTEN_FDS: '1', LISTEN_FDNAMES: '127.0.0.1%3A3000' }) }, /LISTEN_FDS: fd 3 .* is not (open|a socket)/)
  const dir = tempDir(t)
  const file = fs.openSync(path.join(dir, 'not-a-socket'), 'w')
  t.teardown(() => fs.closeSync(file))
  await bootFails(t, {
    env: handoff({ LISTEN_FDS: '1', LISTEN_FDNAMES: '127.0.0.1%3A3000' }),
    stdio: ['ignore', 'pipe', 'pipe', file]
  }, /LISTEN_FDS: fd 3 .* is not a socket/)
})

test('an inherited socket whose name lies about its address is a clear error', async (t) => {
  const server = await listeningSocket(t)
  const { port } = server.address()
  const other = port === 65535 ? port - 1 : port + 1
  await bootFails(t, {
    env: handoff({ LISTEN_FDS: '1', LISTEN_FDNAMES: encodeURIComponent(`127.0.0.1:${other}`) }),
    stdio: ['ignore', 'pipe', 'pipe', server._handle.fd]
  }, new RegExp(`inherited fd 3 was named 127.0.0.1:${other} in LISTEN_FDNAMES but listens on 127.0.0.1:${port}`))
})

test('an inherited socket that the app does not listen on is a clear error, not a silent new port', async (t) => {
  const server = await listeningSocket(t)
  const { port } = server.address()
  const service = await bootFails(t, {
    env: handoff({ LISTEN_FDS: '1', LISTEN_FDNAMES: encodeURIComponent(`127.0.0.2:${port}`) }),
    stdio: ['ignore', 'pipe', 'pipe', server._handle.fd]
  }, /inherited socket\(s\) 127\.0\.0\.2:\d+ \(fd 3\) were not claimed: the app listens on 127\.0\.0\.1:\d+/)
  t.ok(service.find((l) => l.code === 'HOT_RELOAD_UNCLAIMED_SOCKET'), 'logged with its code')
})

test('a worker whose supervisor is gone before it starts does not serve on the sockets by itself', async (t) => {
  const server = await listeningSocket(t)
  const { port } = server.address()
  // The supervisor's variables, but no IPC channel: it died in the meantime.
  await bootFails(t, {
    env: handoff({ LISTEN_FDS: '1', LISTEN_FDNAMES: encodeURIComponent(`127.0.0.1:${port}`), FASTIFY_HOT_RELOAD_SUPERVISED: '1' }),
    stdio: ['ignore', 'pipe', 'pipe', server._handle.fd]
  }, new RegExp(`started by a supervisor \\(pid ${process.pid}\\) that is gone; not serving`))
})

test('an app that listens with app.server.listen() instead of app.listen() is told why /health stays 503', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, listenOnServer: true })
  const service = Service.start(t, { cwd: dir })
  const { port } = await service.waitForLine((l) => l.event === 'server-listening', 15000, 'the app to listen on app.server')
  const warned = await service.waitForLine((l) => l.hotReload === 'listen-bypassed', 10000, 'the warning')
  t.equal(warned.level, 40, 'a warning')
  const health = await fetch(`http://127.0.0.1:${port}/health`)
  t.equal(health.status, 503, 'readiness says not ready (Fastify\'s onListen never ran)')
  t.equal(service.filter((l) => l.hotReload === 'listen-bypassed').length, 1, 'said once')
})

test('an app that listens with app.listen() gets no such warning, even with an onListen hook of its own that takes 3 s', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, slowOnListenMs: 3000 })
  const service = Service.start(t, { cwd: dir })
  await service.listening()
  await service.generationServing(1)
  t.notOk(service.find((l) => l.hotReload === 'listen-bypassed'), 'no listen-bypassed warning')
})

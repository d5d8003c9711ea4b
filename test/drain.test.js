'use strict'
// What a draining generation does with the connections it still has.
const http = require('node:http')
const tap = require('tap')
const { test } = tap
const { Service, tempDir, writeRelease, waitUntilGone, sleep } = require('./helpers/processes')
const { RawConnection } = require('../tools/load-recorder')
const { SAME_STOP_MS } = require('../dist/lib/signals')

// Two tests at a time: each waits mostly on a slow request and a drain, so their waits overlap. Each
// has its own service and port. The one that times a forced exit runs alone.
tap.jobs = 2

function get (target, path) {
  return new Promise((resolve, reject) => {
    http.get({ ...target, path, agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body: JSON.parse(body) }))
    }).on('error', reject)
  })
}

async function startService (t, plugin) {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  return { dir, service, target: { host: url.hostname, port: Number(url.port) } }
}

test('a long request started before the reload finishes with 200 on the old code', async (t) => {
  const { dir, service, target } = await startService(t, { idleGrace: 300 })
  const slow = get(target, '/slow?ms=1500')
  await sleep(200)
  writeRelease(dir, { version: 2 })
  process.kill(service.pid, 'SIGUSR2')
  const successor = await service.generationServing(2)
  const fresh = await get(target, '/')
  t.equal(fresh.body.version, 2, 'new requests reach the new code')
  t.equal(fresh.body.pid, successor)
  const answer = await slow
  t.equal(answer.status, 200, 'the long request succeeded')
  t.equal(answer.body.version, 1, 'on the old code')
  t.equal(answer.body.pid, service.pid, 'in the old process')
  t.equal(answer.headers.connection, 'close', 'with Connection: close')
  await waitUntilGone(service.pid)
  const exit = await service.exit
  t.same(exit, { code: 0, signal: null }, 'the old generation exited 0')
})

test('HTTPS: a long request in flight finishes with 200 across a reload and across SIGTERM (its TLS connection is busy, not idle)', async (t) => {
  const https = require('node:https')
  const path = require('node:path')
  const { execFile } = require('node:child_process')
  const dir = tempDir(t)
  const key = path.join(dir, 'key.pem')
  const cert = path.join(dir, 'cert.pem')
  await new Promise((resolve, reject) => execFile('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { timeout: 30000 }, (err) => err ? reject(err) : resolve()))
  // Requests that last longer than idleGrace: a drain that took their connections for idle cut them then.
  const plugin = { idleGrace: 300 }
  writeRelease(dir, { version: 1, plugin, https: { key, cert } })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const getSecure = (route) => new Promise((resolve, reject) => {
    https.get({ host: url.hostname, port: Number(url.port), path: route, agent: false, rejectUnauthorized: false }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode, body: JSON.parse(body) }))
    }).on('error', reject)
  })
  const acrossReload = getSecure('/slow?ms=1500')
  await sleep(300)
  writeRelease(dir, { version: 2, plugin, https: { key, cert } })
  process.kill(service.pid, 'SIGUSR2')
  const successor = await service.generationServing(2)
  const first = await acrossReload
  t.equal(first.status, 200, 'the request in flight at the reload succeeded')
  t.match(first.body, { version: 1, pid: service.pid }, 'on the old code, in the old process')
  await waitUntilGone(service.pid)
  t.same(await service.exit, { code: 0, signal: null }, 'the old generation exited 0')
  const acrossStop = getSecure('/slow?ms=1500')
  await sleep(300)
  process.kill(successor, 'SIGTERM')
  const second = await acrossStop
  t.equal(second.status, 200, 'the request in flight at SIGTERM succeeded')
  t.match(second.body, { version: 2, pid: successor })
  await waitUntilGone(successor)
  const drained = service.filter((l) => l.hotReloadEvent === 'drained')
  t.ok(drained.length >= 1 && drained.every((l) => !l.cutConnections), 'no drain cut a connection')
})

test('/health on a keep-alive connection to a draining generation answers 503', async (t) => {
  // The ordinary drain: with connectionHandoff this idle connection would move to generation 2.
  const { dir, service, target } = await startService(t, { idleGrace: 5000, connectionHandoff: false })
  const connection = await RawConnection.open(target)
  t.teardown(() => connection.close())
  const before = await connection.get('/health')
  t.equal(before.status, 200)
  t.equal(JSON.parse(before.body).ready, true)
  const live = await connection.get('/health/live')
  t.equal(live.status, 200)
  // A long request elsewhere keeps the old generation draining while we ask.
  const slow = get(target, '/slow?ms=2500')
  await sleep(100)
  writeRelease(dir, { version: 2, plugin: { idleGrace: 5000 } })
  process.kill(service.pid, 'SIGUSR2')
  await service.generationServing(2)
  await service.waitForEvent('draining', (l) => l.pid === service.pid && l.reason === 'reload')
  const during = await connection.get('/health')
  const body = JSON.parse(during.body)
  t.equal(during.status, 503, 'readiness says 503 while draining')
  t.equal(body.ready, false)
  t.equal(body.reason, 'draining')
  t.equal(body.pid, service.pid, 'answered by the draining generation')
  t.equal(during.headers.connection, 'close', 'and it closes the connection')
  t.equal((await slow).status, 200)
})

test('liveness stays 200 while draining', async (t) => {
  const { dir, service, target } = await startService(t, { idleGrace: 5000, connectionHandoff: false })
  const connection = await RawConnection.open(target)
  t.teardown(() => connection.close())
  t.equal((await connection.get('/')).status, 200)
  const slow = get(target, '/slow?ms=2000')
  await sleep(100)
  writeRelease(dir, { version: 2 })
  process.kill(service.pid, 'SIGUSR2')
  await service.waitForEvent('draining', (l) => l.pid === service.pid && l.reason === 'reload')
  const live = await connection.get('/health/live')
  t.equal(live.status, 200)
  t.equal(JSON.parse(live.body).state, 'draining')
  await slow
})

test('SIGTERM with a request in flight: it completes, exit code 0', async (t) => {
  const { service, target } = await startService(t, { idleGrace: 300 })
  const slow = get(target, '/slow?ms=1500')
  await sleep(200)
  process.kill(service.pid, 'SIGTERM')
  const answer = await slow
  t.equal(answer.status, 200, 'the request in flight completed')
  t.equal(answer.body.version, 1)
  const exit = await service.exit
  t.same(exit, { code: 0, signal: null }, 'exited 0')
  t.ok(await service.waitForLine((l) => l.event === 'onClose-ran', 5000, 'the onClose line'), 'onClose hooks ran')
  await t.rejects(get(target, '/'), { code: 'ECONNREFUSED' }, 'the port is closed afterwards')
})

test('a drain that cannot finish is cut at drainTimeout and the cut is logged', async (t) => {
  const { dir, service, target } = await startService(t, { idleGrace: 300, drainTimeout: 1000 })
  const stuck = get(target, '/slow?ms=20000').catch((err) => err)
  await sleep(200)
  writeRelease(dir, { version: 2 })
  process.kill(service.pid, 'SIGUSR2')
  await service.generationServing(2)
  const cut = await service.waitForLine((l) => l.hotReload === 'drain-cut' && l.cause === 'drain-timeout', 10000, 'the cut at drainTimeout')
  t.equal(cut.pid, service.pid, 'by generation 1')
  t.equal(cut.drainTimeout, 1000, 'at its drainTimeout')
  t.equal(cut.cutConnections, 1, 'one connection was cut')
  await waitUntilGone(service.pid)
  const outcome = await stuck
  t.ok(outcome instanceof Error, 'the stuck request was cut')
})

test('a second SIGTERM during the drain forces the exit', { buffered: false }, async (t) => {
  const { service, target } = await startService(t, { idleGrace: 300 })
  const slow = get(target, '/slow?ms=5000').catch((err) => err)
  await sleep(200)
  const started = Date.now()
  process.kill(service.pid, 'SIGTERM')
  await service.waitForEvent('draining', (l) => l.reason === 'shutdown')
  // A person's second signal, not the same one delivered twice at once (test/unit/signals.test.js).
  await sleep(SAME_STOP_MS + 100)
  process.kill(service.pid, 'SIGTERM')
  const exit = await service.exit
  t.equal(exit.code, 1, 'forced exit code 1')
  t.ok(Date.now() - started < 4500, 'without waiting for the 5 s request')
  t.ok((await slow) instanceof Error, 'the request in flight was cut')
})

test('an onClose hook that never settles: after a reload the old generation still exits, with code 1, at drainTimeout + 5 s at the latest', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: { idleGrace: 300, drainTimeout: 1000 }, onCloseHangs: true })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  writeRelease(dir, { version: 2, plugin: { idleGrace: 300, drainTimeout: 1000 } })
  process.kill(service.pid, 'SIGUSR2')
  const successor = await service.generationServing(2)
  const timeout = await service.waitForLine((l) => l.hotReload === 'close-timeout' && l.pid === service.pid, 15000, 'the old generation to give up on its onClose hooks')
  t.ok(timeout.waitedMs <= 6000, `it waited ${timeout.waitedMs} ms for them`)
  t.same(await service.exit, { code: 1, signal: null }, 'and exited 1')
  const fresh = await get({ host: url.hostname, port: Number(url.port) }, '/')
  t.same([fresh.body.version, fresh.body.pid], [2, successor], 'generation 2 serves')
})

test('an onClose hook that never settles: at SIGTERM the process exits with code 1 at drainTimeout + 5 s, and logs close-timeout as after a reload', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: { idleGrace: 300, drainTimeout: 1000 }, onCloseHangs: true })
  const service = Service.start(t, { cwd: dir })
  await service.listening()
  // Its SIGTERM handler is installed once it serves (Fastify logs that it listens just before).
  await service.generationServing(1)
  const signalled = Date.now()
  process.kill(service.pid, 'SIGTERM')
  t.same(await service.exit, { code: 1, signal: null }, 'exited 1')
  t.ok(Date.now() - signalled < 10000, `within drainTimeout + 5 s and a margin (${Date.now() - signalled} ms)`)
  t.match(service.find((l) => l.hotReload === 'close-timeout'), { generation: 1, waitedMs: Number }, 'close-timeout in the log, with its fields')
})

for (const how of ['SIGTERM', 'a reload']) {
  test(`after ${how}, signals that come while the app's onClose hooks run neither kill the process nor cut the hooks short: exit 0`, async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, plugin: { idleGrace: 300 }, onCloseMs: 2000 })
    const service = Service.start(t, { cwd: dir })
    await service.listening()
    // Its SIGTERM handler is installed once it serves (Fastify logs that it listens just before).
    await service.generationServing(1)
    if (how === 'SIGTERM') {
      process.kill(service.pid, 'SIGTERM')
    } else {
      writeRelease(dir, { version: 2, plugin: { idleGrace: 300 } })
      process.kill(service.pid, 'SIGUSR2')
      await service.generationServing(2)
    }
    await service.waitForLine((l) => l.hotReload === 'drained' && l.pid === service.pid, 10000, 'the drain to end (the onClose hooks run next)')
    await sleep(200)
    process.kill(service.pid, 'SIGUSR2')
    // A second SIGTERM forces the exit (as close-with-grace does); after a reload the first one is the shutdown.
    if (how === 'a reload') {
      await sleep(200)
      process.kill(service.pid, 'SIGTERM')
    }
    t.same(await service.exit, { code: 0, signal: null }, 'exited 0, not killed by a signal')
    t.ok(service.find((l) => l.event === 'onClose-ran' && l.pid === service.pid), 'its onClose hook ran to its end')
  })
}

for (const own of ['close-with-grace', 'handler']) {
  test(`an app with its own SIGTERM handler that closes it (${own}): SIGTERM ends the process only after the app's onClose hooks ran`, async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, plugin: { idleGrace: 300 }, onCloseMs: 500, ownSigterm: own })
    const service = Service.start(t, { cwd: dir })
    await service.listening()
    // Its SIGTERM handler is installed once it serves (Fastify logs that it listens just before).
    await service.generationServing(1)
    process.kill(service.pid, 'SIGTERM')
    t.same(await service.exit, { code: 0, signal: null }, 'exited 0')
    t.ok(service.find((l) => l.event === 'onClose-ran' && l.pid === service.pid), 'its onClose hook ran to its end')
  })
}

/** A raw connection: writes what it is given, collects every byte the server sends until it closes. */
function rawClient (target) {
  const net = require('node:net')
  const socket = net.connect(target)
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk) => { received += chunk })
  const closed = new Promise((resolve) => socket.on('close', () => resolve(received)))
  socket.on('error', () => {})
  return { socket, closed, connected: new Promise((resolve) => socket.once('connect', resolve)) }
}

const PIPELINED = 'GET /slow?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n' +
  'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{"n":42}' +
  'GET / HTTP/1.1\r\nHost: x\r\n\r\n'

for (const how of ['SIGTERM', 'a reload without connectionHandoff']) {
  test(`pipelined requests already received when ${how} starts a drain are all answered, none before the last says Connection: close, and the connection is closed after them`, async (t) => {
    const { dir, service, target } = await startService(t, { idleGrace: 300, connectionHandoff: false })
    const client = rawClient(target)
    await client.connected
    client.socket.write(PIPELINED)
    await sleep(300)
    if (how === 'SIGTERM') {
      process.kill(service.pid, 'SIGTERM')
    } else {
      writeRelease(dir, { version: 2, plugin: { idleGrace: 300, connectionHandoff: false } })
      process.kill(service.pid, 'SIGUSR2')
    }
    const received = await client.closed
    const statuses = received.match(/HTTP\/1\.1 \d+/g) ?? []
    t.same(statuses, ['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200'], 'three answers')
    t.match(received, /"n":42/, 'the POST among them')
    const connectionHeaders = (received.match(/connection: \S+/gi) ?? []).map((h) => h.toLowerCase())
    // The last one's answer was written before its turn (it waited in Node's queue), too early to say
    // close: the drain closes the connection once it is idle (client.closed resolved).
    t.same(connectionHeaders.slice(0, 2), ['connection: keep-alive', 'connection: keep-alive'], 'the answers before the last say keep-alive')
    if (how === 'SIGTERM') t.same(await service.exit, { code: 0, signal: null }, 'exited 0')
  })
}

test('SIGTERM while a request\'s head is half sent: its client pauses longer than idleGrace, then finishes it, and is answered', async (t) => {
  const { service, target } = await startService(t, { idleGrace: 300 })
  const client = rawClient(target)
  await client.connected
  client.socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ')
  await sleep(200)
  process.kill(service.pid, 'SIGTERM')
  await service.waitForEvent('draining', (l) => l.reason === 'shutdown')
  await sleep(1000)
  t.notOk(client.socket.destroyed, 'the connection is still open after idleGrace')
  client.socket.write('yes\r\n\r\n')
  const received = await client.closed
  t.match(received, /^HTTP\/1\.1 200/, 'the request was answered')
  t.match(received.toLowerCase(), /connection: close/, 'with Connection: close')
  t.same(await service.exit, { code: 0, signal: null }, 'exited 0')
})

test('SIGTERM, then requests pipelined one by one behind a slow one (a POST among them): every one answered, none lost behind a Connection: close', async (t) => {
  const { service, target } = await startService(t, { idleGrace: 300 })
  const client = rawClient(target)
  await client.connected
  client.socket.write('GET /slow?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n')
  await sleep(100)
  process.kill(service.pid, 'SIGTERM')
  await sleep(200)
  client.socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{"n":42}')
  await sleep(200)
  client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  const received = await client.closed
  t.same(received.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200'], 'three answers')
  t.match(received, /"n":42/, 'the POST among them')
  t.same(await service.exit, { code: 0, signal: null }, 'exited 0')
})

test('maxDrainingGenerations 1 with onClose hooks that never settle: a generation cut for it exits 5 s after the cut, not at drainTimeout + 5 s', async (t) => {
  const dir = tempDir(t)
  const plugin = { idleGrace: 300, drainTimeout: 20000, maxDrainingGenerations: 1 }
  writeRelease(dir, { version: 1, plugin, onCloseHangs: true })
  const service = Service.start(t, { cwd: dir })
  await service.listening()
  process.kill(service.pid, 'SIGUSR2')
  const second = await service.generationServing(2)
  // A slow boot: generation 1 is done draining and runs its onClose hooks when the cut comes (as on
  // a loaded machine; its instance is closed by then, and the cut was not logged).
  writeRelease(dir, { version: 3, plugin, onCloseHangs: true, slowBootMs: 3000 })
  process.kill(second, 'SIGUSR2')
  await service.generationServing(3)
  const cut = await service.waitForLine((l) => l.hotReload === 'drain-cut' && l.cause === 'max-draining' && l.pid === service.pid, 10000, 'generation 1 to be cut')
  const drained = service.find((l) => l.hotReload === 'drained' && l.pid === service.pid)
  t.ok(drained !== undefined && drained.time <= cut.time, 'generation 1 had drained before the cut')
  const timeout = await service.waitForLine((l) => l.hotReload === 'close-timeout' && l.pid === service.pid, 15000, 'generation 1 to give up on its onClose hooks')
  t.ok(timeout.time - cut.time < 8000, `it exited ${timeout.time - cut.time} ms after the cut`)
  t.same(await service.exit, { code: 1, signal: null }, 'with code 1')
})

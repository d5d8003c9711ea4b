'use strict'
// connectionHandoff with each kind of client and connection: pipelined requests and bodies, a health
// checker on a persistent connection, slow requests that end together, an upgraded connection, TLS.
// The chains of reloads under load are in connection-handoff.test.js.
const path = require('node:path')
const { execFile } = require('node:child_process')
const tap = require('tap')
const { test } = tap
const { Service, startSupervised, servingTarget, tempDir, writeRelease, waitUntilGone, waitFor, sleep } = require('./helpers/processes')
const { startLoad, RawConnection } = require('./helpers/load')

// Two tests at a time: each waits on reloads and drains with a few clients, so their waits overlap.
// Each has its own service, port and clients.
tap.jobs = 2

// A short probation where a test waits for each old generation to be gone (it lives until its drain
// is over and its successor's probation too: 2 s by default) and is not about the probation.
const PROBATION = 300

test('pipelined requests, POST bodies included, lose and corrupt nothing across reloads', async (t) => {
  const dir = tempDir(t)
  const plugin = { connectionHandoff: true, idleGrace: 300, probation: PROBATION }
  writeRelease(dir, { version: 1, plugin })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const connection = await RawConnection.open({ host: url.hostname, port: Number(url.port) })
  t.teardown(() => connection.close())
  let pid = service.pid
  const seen = []
  for (let version = 2; version <= 6; version++) {
    const body = JSON.stringify({ n: version, text: 'x'.repeat(version * 100) })
    connection.write(
      'GET / HTTP/1.1\r\nHost: a\r\n\r\n' +
      `POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}` +
      'GET /health HTTP/1.1\r\nHost: a\r\n\r\n'
    )
    const [first, echo, health] = [await connection.readResponse(), await connection.readResponse(), await connection.readResponse()]
    t.equal(first.status, 200)
    t.equal(echo.status, 200)
    t.same(JSON.parse(echo.body).body, JSON.parse(body), `the POST body came back whole (${version - 1})`)
    t.equal(health.status, 200)
    t.not(first.headers.connection, 'close', 'the server keeps the connection')
    seen.push(JSON.parse(first.body).version)
    writeRelease(dir, { version, plugin })
    process.kill(pid, 'SIGUSR2')
    const next = await service.generationServing(version)
    await waitUntilGone(pid)
    pid = next
  }
  const last = await connection.get('/')
  t.equal(JSON.parse(last.body).version, 6, 'the same connection reaches the newest generation')
  t.notOk(connection.closed, 'the connection was never closed')
  t.same(seen, [1, 2, 3, 4, 5], 'each generation answered in turn on one connection')
})

test('a pipelined request half arrived when the previous response ends: it is not cut, the connection moves after it', async (t) => {
  const dir = tempDir(t)
  const plugin = { connectionHandoff: true, idleGrace: 300, probation: 300 }
  writeRelease(dir, { version: 1, plugin })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const connection = await RawConnection.open({ host: url.hostname, port: Number(url.port) })
  t.teardown(() => connection.close())
  // A slow request, and the first half of the next one in the same write.
  connection.write('GET /slow?ms=2500 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHo')
  await waitFor(() => service.find((l) => l.req?.url === '/slow?ms=2500'), 10000, 'the slow request to arrive')
  writeRelease(dir, { version: 2, plugin })
  process.kill(service.pid, 'SIGUSR2')
  const successor = await service.generationServing(2)
  // The slow response ends during the drain, with half a request read behind it.
  const slow = await connection.readResponse()
  t.equal(slow.status, 200)
  t.equal(JSON.parse(slow.body).version, 1)
  await sleep(300)
  connection.write('st: a\r\n\r\n')
  const second = await connection.readResponse()
  t.equal(second.status, 200, 'the request that was half read is answered whole')
  t.equal(JSON.parse(second.body).pid, service.pid, 'by the old generation, which had its first half')
  t.not(second.headers.connection, 'close')
  const third = await connection.get('/')
  t.equal(JSON.parse(third.body).pid, successor, 'then the connection moved to the new generation')
  t.notOk(connection.closed, 'the connection was never closed')
  await waitUntilGone(service.pid)
})

// Standalone, and under the supervisor (where the old worker drains the same way).
for (const supervised of [false, true]) {
  test(`${supervised ? 'supervised: ' : ''}a health checker on a persistent connection (Envoy's) hears at most one 503 per reload: the draining 503 ends its connection`, async (t) => {
    // Its connection waits its turn to move while 30 busy ones go first; the old generation answered
    // each probe meanwhile with 503 draining (up to 6 in a row, 200 ms apart, in a user pass).
    const dir = tempDir(t)
    const plugin = { idleGrace: 300, probation: PROBATION }
    writeRelease(dir, { version: 1, plugin })
    const service = supervised ? startSupervised(t, { dir }).service : Service.start(t, { cwd: dir })
    const target = await servingTarget(service)
    const load = startLoad(t, target, { connections: 30, keepAlive: true })
    const probes = []
    const checker = startLoad(t, target, { connections: 1, keepAlive: true, path: '/health', pauseMs: 20, onResult: (r) => probes.push(r.failed ? 'failed' : r.status) })
    await sleep(300)
    let serving = supervised ? await service.generationServing(1) : service.pid
    for (let version = 2; version <= 4; version++) {
      writeRelease(dir, { version, plugin })
      // The supervisor reloads on the signal; standalone, the serving generation does.
      process.kill(supervised ? service.pid : serving, 'SIGUSR2')
      const next = await service.generationServing(version)
      await waitUntilGone(serving)
      serving = next
      await sleep(300)
    }
    const [stats, checks] = [await load.stop(), await checker.stop()]
    let run = 0
    let longestRun = 0
    for (const status of probes) {
      run = status === 503 ? run + 1 : 0
      longestRun = Math.max(longestRun, run)
    }
    t.comment(JSON.stringify({ probes: probes.length, statuses: checks.statuses, longestRun, checkerConnections: checks.socketsOpened, loadFailed: stats.failed }))
    t.equal(checks.failed, 0, 'no probe failed')
    t.equal(stats.failed, 0, 'no request of the load failed')
    t.ok(probes.length > 50, `the checker probed throughout (${probes.length})`)
    t.ok(longestRun <= 1, `at most one 503 in a row (${longestRun})`)
    t.ok(checks.socketsOpened <= 1 + 3, `the checker reconnected at most once per reload (${checks.socketsOpened} connections)`)
  })
}

test('keep-alive clients whose slow requests end together: the ones a move had no room for close after a response once the moves are over, 0 failed, no cut', async (t) => {
  // Moves go one at a time; 20 responses that end in the same instant give one of them a turn, and
  // the other clients send their next request at once. Before, the old generation served those on
  // the old code until its drainTimeout cut them with a request in flight.
  const dir = tempDir(t)
  const plugin = { idleGrace: 300, drainTimeout: 20000, probation: PROBATION }
  writeRelease(dir, { version: 1, plugin })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 20, keepAlive: true, path: '/slow?ms=1000' })
  await sleep(1500)
  writeRelease(dir, { version: 2, plugin })
  process.kill(service.pid, 'SIGUSR2')
  await service.generationServing(2)
  const committedAt = Date.now()
  await waitUntilGone(service.pid, 25000)
  const drainMs = Date.now() - committedAt
  await sleep(1200)
  const stats = await load.stop()
  t.comment(JSON.stringify({ drainMs, ...stats, failures: stats.failures.slice(0, 5) }))
  t.equal(stats.failed, 0, 'no request failed')
  t.ok(drainMs < 15000, `the old generation was gone well before its drainTimeout (${drainMs} ms)`)
  const drained = await service.waitForLine((l) => l.pid === service.pid && l.hotReloadEvent === 'drained', 5000, 'the drain result')
  t.notOk(drained.cutConnections, 'nothing was cut')
  t.ok(drained.movedConnections >= 1, `some connections moved (${drained.movedConnections})`)
})

test('with connectionHandoff, an upgraded connection stays in the old generation and drains there', async (t) => {
  const dir = tempDir(t)
  const plugin = { connectionHandoff: true, idleGrace: 300, drainTimeout: 1500 }
  writeRelease(dir, { version: 1, plugin, upgrade: true })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  const load = startLoad(t, target, { connections: 10, keepAlive: true })
  const upgraded = await RawConnection.open(target)
  t.teardown(() => upgraded.close())
  const received = (pattern) => waitFor(() => pattern.test(upgraded.buffer.toString()), 10000, `${pattern} on the upgraded connection`)
  upgraded.write('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n')
  await received(/^HTTP\/1.1 101[^]*\r\n\r\n$/)
  upgraded.buffer = Buffer.alloc(0)
  writeRelease(dir, { version: 2, plugin, upgrade: true })
  process.kill(service.pid, 'SIGUSR2')
  await service.generationServing(2)
  upgraded.write('ping')
  await received(/ping/)
  t.equal(upgraded.buffer.toString(), '1:ping', 'the upgraded connection is still served by the old generation')
  const drained = await service.waitForLine((l) => l.pid === service.pid && l.hotReloadEvent === 'drained', 10000)
  t.equal(drained.cutConnections, 1, 'it was cut at drainTimeout, like any connection that cannot move')
  t.ok(drained.movedConnections >= 10, `the keep-alive connections moved (${drained.movedConnections})`)
  const stats = await load.stop()
  t.equal(stats.failed, 0)
  t.equal(stats.socketsOpened, 10, 'the keep-alive clients did not reconnect')
})

test('with connectionHandoff, TLS connections drain the ordinary way (0 failed, they reconnect)', async (t) => {
  const dir = tempDir(t)
  const key = path.join(dir, 'key.pem')
  const cert = path.join(dir, 'cert.pem')
  await new Promise((resolve, reject) => execFile('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { timeout: 30000 }, (err) => err ? reject(err) : resolve()))
  // The default probation: TLS connections drain the ordinary way, the keep-alive race included.
  const plugin = { connectionHandoff: true, idleGrace: 300 }
  writeRelease(dir, { version: 1, plugin, https: { key, cert } })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const https = require('node:https')
  const agent = new https.Agent({ keepAlive: true, maxSockets: 5, rejectUnauthorized: false })
  t.teardown(() => agent.destroy())
  let opened = 0
  const create = agent.createConnection.bind(agent)
  agent.createConnection = (...args) => { opened++; return create(...args) }
  let failed = 0
  let ok = 0
  let running = true
  const loop = async () => {
    while (running) {
      await new Promise((resolve) => {
        https.get({ host: url.hostname, port: Number(url.port), path: '/', agent }, (res) => { res.resume(); res.on('end', () => { ok++; resolve() }) })
          .on('error', () => { failed++; resolve() })
      })
    }
  }
  const loops = Array.from({ length: 5 }, loop)
  await sleep(300)
  writeRelease(dir, { version: 2, plugin, https: { key, cert } })
  process.kill(service.pid, 'SIGUSR2')
  await service.generationServing(2)
  await waitUntilGone(service.pid)
  await sleep(300)
  running = false
  await Promise.all(loops)
  const drained = await service.waitForLine((l) => l.pid === service.pid && l.hotReloadEvent === 'drained', 5000, 'the drain result')
  t.equal(failed, 0, `no request failed (${ok} ok)`)
  t.equal(drained.movedConnections, 0, 'no TLS connection was moved')
  t.ok(opened > 5, `the TLS clients reconnected (${opened} connections for 5 clients)`)
})

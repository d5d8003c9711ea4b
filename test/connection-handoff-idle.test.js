'use strict'
// connectionHandoff: a keep-alive connection that has not begun a request in this generation (it
// was moved in from the previous one and stayed idle, or it was accepted and its client has not
// sent anything yet) is as idle as one between two requests: the drain moves it on, it is not cut
// at drainTimeout.
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { Service, tempDir, writeRelease, waitUntilGone, waitFor, sleep } = require('./helpers/processes')
const { RawConnection } = require('./helpers/load')

// Two tests at a time: each waits mostly on reloads of a service with a few idle connections, so
// their waits overlap. Each has its own service and port. The ones that time a moved-in
// connection against headersTimeout and requestTimeout run alone.
tap.jobs = 2

// A drainTimeout no drain of an idle connection comes near: a cut, or a wait for it, is unmistakable.
const DRAIN_TIMEOUT = 20000
const PLUGIN = { connectionHandoff: true, idleGrace: 300, probation: 300, drainTimeout: DRAIN_TIMEOUT }

async function start (t, extra = {}) {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, ...extra })
  const service = Service.start(t, { cwd: dir, deadlineMs: 120000 })
  const url = await service.listening()
  return { dir, service, target: { host: url.hostname, port: Number(url.port) } }
}

/** Reloads the generation `pid` to `version`; resolves with the new pid and the old generation's drained event. */
async function reload (service, dir, pid, version, extra = {}) {
  writeRelease(dir, { version, plugin: PLUGIN, ...extra })
  process.kill(pid, 'SIGUSR2')
  const next = await service.generationServing(version)
  // Longer than drainTimeout: a drain that waits for its deadline still reports, and fails below.
  const drained = await service.waitForEvent('drained', (l) => l.pid === pid, DRAIN_TIMEOUT + 10000)
  await waitUntilGone(pid)
  return { next, drained }
}

function assertQuickDrain (t, drained, moved, what) {
  t.equal(drained.cutConnections, 0, `${what}: no connection cut`)
  t.equal(drained.movedConnections, moved, `${what}: ${moved} connection(s) moved`)
  t.ok(drained.durationMs < DRAIN_TIMEOUT / 2, `${what}: the drain took ${drained.durationMs} ms, well under drainTimeout (${DRAIN_TIMEOUT} ms)`)
}

/**
 * `count` keep-alive connections, each used once in generation 1, moved to generation 2 by one
 * reload with the server options `timeouts`. Does not wait for generation 1 to be gone (it comes,
 * on a loaded machine, long after the move): resolves at its drained event, whose time is about
 * when the connections moved.
 */
async function connectionsMoved (t, timeouts, count = 1) {
  const { dir, service, target } = await start(t, timeouts)
  const connections = []
  for (let i = 0; i < count; i++) connections.push(await RawConnection.open(target))
  t.teardown(() => { for (const connection of connections) connection.close() })
  for (const connection of connections) t.equal(JSON.parse((await connection.get('/')).body).version, 1)
  const first = service.pid
  writeRelease(dir, { version: 2, plugin: PLUGIN, ...timeouts })
  process.kill(first, 'SIGUSR2')
  const next = await service.generationServing(2)
  const drained = await service.waitForEvent('drained', (l) => l.pid === first, DRAIN_TIMEOUT + 10000)
  assertQuickDrain(t, drained, count, 'generation 1')
  t.teardown(() => waitUntilGone(first))
  return { service, target, connections, next, movedAt: drained.time }
}

test('one idle keep-alive connection (node:http Agent) is moved on at every reload: 3 chained reloads, no cut, one connection', async (t) => {
  const { dir, service, target } = await start(t)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  let opened = 0
  const create = agent.createConnection.bind(agent)
  agent.createConnection = (...args) => { opened++; return create(...args) }
  const get = () => new Promise((resolve, reject) => {
    const request = http.get({ ...target, path: '/', agent, timeout: 10000 }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body: JSON.parse(body), localPort: request.socket.localPort }))
    })
    request.on('timeout', () => request.destroy(new Error('request timed out')))
    request.on('error', reject)
  })

  const first = await get()
  t.equal(first.body.version, 1)
  let pid = service.pid
  for (let version = 2; version <= 4; version++) {
    // Idle meanwhile: generations 2 and 3 never see a request on it before they drain.
    const { next, drained } = await reload(service, dir, pid, version)
    assertQuickDrain(t, drained, 1, `generation ${version - 1}`)
    pid = next
    await sleep(300)
  }
  const last = await get()
  t.equal(last.status, 200)
  t.equal(last.body.version, 4, 'the newest generation answers')
  t.equal(last.body.pid, pid)
  t.equal(last.localPort, first.localPort, 'on the same connection (same local port)')
  t.equal(opened, 1, 'the client opened one connection in all')
})

test('a connection moved in that gets a request in flight during the next drain: the request finishes, then the connection moves on', async (t) => {
  const { dir, service, target } = await start(t)
  const connection = await RawConnection.open(target)
  t.teardown(() => connection.close())
  t.equal(JSON.parse((await connection.get('/')).body).version, 1)
  const second = await reload(service, dir, service.pid, 2)
  assertQuickDrain(t, second.drained, 1, 'generation 1')
  const pid2 = second.next
  await sleep(300)

  // Its first request in generation 2 is in flight when generation 2 drains.
  connection.write('GET /slow?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n')
  await waitFor(() => service.find((l) => l.pid === pid2 && l.req?.url === '/slow?ms=1500'), 10000, 'the slow request to reach generation 2')
  const third = reload(service, dir, pid2, 3)
  const slow = await connection.readResponse()
  t.equal(slow.status, 200, 'the request in flight is answered')
  t.equal(JSON.parse(slow.body).version, 2, 'by generation 2')
  t.not(slow.headers.connection, 'close', 'without Connection: close: the connection is to move')
  const { next: pid3, drained } = await third
  assertQuickDrain(t, drained, 1, 'generation 2')
  const after = await connection.get('/')
  t.equal(after.status, 200)
  t.same(JSON.parse(after.body), { version: 3, pid: pid3 }, 'the same connection reaches generation 3')
  t.notOk(connection.closed, 'the connection was never closed')
})

test('two reloads close together: a connection moved to a generation that drains already goes on to the newest, unread', async (t) => {
  // A longer probation: the first drain's moves last 4 s (movesDeadlineMs), time for the second reload.
  const plugin = { ...PLUGIN, probation: 5000 }
  const { dir, service, target } = await start(t, { plugin })
  const connection = await RawConnection.open(target)
  t.teardown(() => connection.close())
  const pid1 = service.pid
  // In flight in generation 1 while two reloads happen; answered when the test says so.
  connection.write('GET /until?file=answer HTTP/1.1\r\nHost: a\r\n\r\n')
  await waitFor(() => service.find((l) => l.pid === pid1 && l.req?.url === '/until?file=answer'), 10000, 'the request to reach generation 1')
  writeRelease(dir, { version: 2, plugin })
  process.kill(pid1, 'SIGUSR2')
  const pid2 = await service.generationServing(2)
  writeRelease(dir, { version: 3, plugin })
  process.kill(pid2, 'SIGUSR2')
  const pid3 = await service.generationServing(3)
  fs.writeFileSync(path.join(dir, 'answer'), '')
  const inFlight = await connection.readResponse()
  t.same(JSON.parse(inFlight.body), { version: 1, pid: pid1 }, 'the request in flight is answered by generation 1')
  t.not(inFlight.headers.connection, 'close', 'without Connection: close: the connection is to move')
  const after = await connection.get('/')
  t.same(JSON.parse(after.body), { version: 3, pid: pid3 }, 'its next request is answered by the newest generation, not by the one that drains')
  t.notOk(connection.closed, 'the connection was never closed')
})

test('a connection whose client has sent nothing yet is moved, not cut at drainTimeout', async (t) => {
  const { dir, service, target } = await start(t)
  // Accepted by generation 1, no request on it yet (a browser's preconnect, say).
  const connection = await RawConnection.open(target)
  t.teardown(() => connection.close())
  await waitFor(() => service.find((l) => l.hotReloadEvent === 'serving'), 10000, 'generation 1 to serve')
  await sleep(300)
  let pid = service.pid
  for (let version = 2; version <= 3; version++) {
    const { next, drained } = await reload(service, dir, pid, version)
    assertQuickDrain(t, drained, 1, `generation ${version - 1}`)
    pid = next
  }
  const response = await connection.get('/')
  t.equal(response.status, 200)
  t.same(JSON.parse(response.body), { version: 3, pid }, 'its first request reaches the newest generation')
  t.notOk(connection.closed, 'the connection was never closed')
})

// Node counts a moved-in connection as waiting for its first request: left alone, its headersTimeout
// or requestTimeout (checked every 50 ms here) would answer 408 Request Timeout to a client that was
// only keeping the connection alive. requestTimeout shorter than keepAliveTimeout is what a server
// behind AWS's load balancer has (keepAliveTimeout 72 s, as AWS advises).
for (const limit of ['headersTimeout', 'requestTimeout']) {
  test(`a connection moved in that stays idle is closed quietly before Node would answer 408 at ${limit}; one that is used goes on`, { buffered: false }, async (t) => {
    const TIMEOUT = 1500
    // keepAliveTimeout only has to be the longer one; 5 s closed both idle connections in
    // generation 1 before the drain whenever the successor took longer than that to boot (3 runs at
    // load 20), so nothing was left to move.
    const KEEP_ALIVE_TIMEOUT = 20000
    // The other of the two is off (requestTimeout, Fastify's default) or long (headersTimeout: Node's 60 s).
    const limits = limit === 'headersTimeout' ? { headersTimeout: TIMEOUT, requestTimeout: 0 } : { headersTimeout: 60000, requestTimeout: TIMEOUT }
    const timeouts = { serverTimeouts: { ...limits, keepAliveTimeout: KEEP_ALIVE_TIMEOUT, connectionsCheckingInterval: 50 } }
    // Both connections moved during generation 1's drain: counted from its end.
    const { connections: [idle, used], next, movedAt } = await connectionsMoved(t, timeouts, 2)

    // Used before its timeout: answered, and it stays open past that timeout (Node's own
    // keep-alive timeout, KEEP_ALIVE_TIMEOUT, applies from its response on).
    await sleep(Math.max(0, movedAt + TIMEOUT / 3 - Date.now()))
    const answer = await used.get('/')
    t.same(JSON.parse(answer.body), { version: 2, pid: next }, 'the used connection is answered by generation 2')

    await waitFor(() => idle.closed, TIMEOUT * 3, 'the idle moved-in connection to be closed')
    const idleFor = Date.now() - movedAt
    t.equal(idle.buffer.length, 0, `closed with nothing written to it: no 408 (got ${JSON.stringify(idle.buffer.toString())})`)
    t.ok(idleFor < TIMEOUT + 1000, `closed by the time ${limit} would have struck (${idleFor} ms)`)

    await sleep(TIMEOUT)
    t.notOk(used.closed, `the used connection is still open after ${limit}`)
    const again = await used.get('/')
    t.equal(again.status, 200, 'and serves its next request')
  })
}

test('a connection moved in that stays idle is kept for the keep-alive timeout and its buffer, as Node keeps one idle after a response, not closed at the server\'s connectionTimeout', async (t) => {
  // The server's `timeout` is Fastify's connectionTimeout: Node arms it on a connection it takes as
  // new, for its first request. A moved-in connection that only keeps alive was closed by it.
  const CONNECTION_TIMEOUT = 1000
  // Long enough that generation 1 keeps the connection until the move on a loaded machine.
  const KEEP_ALIVE_TIMEOUT = 8000
  // Larger than Node's default (1000), so that it stands out from when the drain ended.
  const BUFFER = 3000
  const timeouts = { serverTimeouts: { timeout: CONNECTION_TIMEOUT, keepAliveTimeout: KEEP_ALIVE_TIMEOUT, keepAliveTimeoutBuffer: BUFFER } }
  // It moved during generation 1's drain, just before its end.
  const { connections: [idle], movedAt } = await connectionsMoved(t, timeouts)

  await sleep(Math.max(0, movedAt + CONNECTION_TIMEOUT * 2.5 - Date.now()))
  t.notOk(idle.closed, `still open ${Date.now() - movedAt} ms after the move, past the server's timeout (${CONNECTION_TIMEOUT} ms)`)
  await waitFor(() => idle.closed, KEEP_ALIVE_TIMEOUT + BUFFER + 5000, 'the idle moved-in connection to be closed')
  const idleFor = Date.now() - movedAt
  t.equal(idle.buffer.length, 0, 'closed with nothing written to it')
  // Without the buffer it closed within keepAliveTimeout of the move (which came before movedAt).
  t.ok(idleFor > KEEP_ALIVE_TIMEOUT + BUFFER / 2, `closed ${idleFor} ms after the move: keepAliveTimeout (${KEEP_ALIVE_TIMEOUT} ms) and its buffer (${BUFFER} ms)`)
})

test('the first request on a connection moved in gets the server\'s connectionTimeout, as on a connection accepted here: a stalled one is cut at it', async (t) => {
  // The server's `timeout` (Fastify's connectionTimeout) closes a connection with no I/O for that
  // long, also in the middle of a request. A moved-in connection waits without it (above); its
  // first request must get it back.
  const CONNECTION_TIMEOUT = 1000
  const STALL_MS = 6000
  // Long enough that generation 1 keeps the connection until the move on a loaded machine.
  const timeouts = { serverTimeouts: { timeout: CONNECTION_TIMEOUT, keepAliveTimeout: 15000 } }
  const { target, connections: [moved], next } = await connectionsMoved(t, timeouts)
  // The same stalled request on a connection generation 2 accepted itself, side by side.
  const accepted = await RawConnection.open(target)
  t.teardown(() => accepted.close())

  const startedAt = Date.now()
  const outcomes = await Promise.all([moved, accepted].map(async (connection) => {
    connection.write(`GET /slow?ms=${STALL_MS} HTTP/1.1\r\nHost: a\r\n\r\n`)
    const outcome = await connection.readResponse(STALL_MS * 2).then((r) => `answered by ${JSON.parse(r.body).pid}`, (err) => err.code)
    return { outcome, afterMs: Date.now() - startedAt }
  }))
  t.same(outcomes.map((o) => o.outcome), ['CLOSED', 'CLOSED'], `both connections are closed without an answer (generation 2 is pid ${next})`)
  for (const [which, { afterMs }] of [['moved in', outcomes[0]], ['accepted here', outcomes[1]]]) {
    t.ok(afterMs < STALL_MS, `the one ${which} at the server's timeout (${afterMs} ms), not when the request would have ended (${STALL_MS} ms)`)
  }
})


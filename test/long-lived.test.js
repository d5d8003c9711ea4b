'use strict'
// Long-lived connections across reloads: WebSockets of @fastify/websocket get 1001 Going Away,
// spread over `closeSpread`, and reconnect to the new generation; server-sent event streams end
// cleanly and EventSource clients resume on the new generation with Last-Event-ID; another upgraded
// protocol is handed to the app's 'upgradeDraining' listener with the time it has left.
const http = require('node:http')
const tap = require('tap')
const { test } = tap
const { Service, tempDir, writeRelease, waitFor, waitUntilGone, sleep } = require('./helpers/processes')
const { startLoad, RawConnection } = require('./helpers/load')
const { webSocketClients, eventSource, burst } = require('./helpers/long-lived')

// Two tests at a time: they wait mostly on closeSpread windows and drains (a few clients each, no
// saturating load), so their waits overlap. Each has its own service, port and clients. The first
// test, whose closes must be spread evenly (no 100 ms with a quarter of them), runs alone.
tap.jobs = 2

async function start (t, release) {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, ...release })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  return { dir, service, target: { host: url.hostname, port: Number(url.port) } }
}

/** The drain result an old generation logged (it may be gone before its last lines come through). */
function drainedLine (service, pid) {
  return service.waitForEvent('drained', (l) => l.pid === pid, 15000)
}

test('60 WebSocket clients over 3 chained reloads: every one gets 1001, spread over closeSpread, and reconnects to the new generation', { buffered: false }, async (t) => {
  const clientCount = 60
  // Long enough that a stall of a few hundred ms on a busy machine (either side) cannot fake a burst.
  const closeSpread = 4000
  const plugin = { idleGrace: 300, readyTimeout: 20000, drainTimeout: 10000, closeSpread, probation: 300 }
  const { dir, service, target } = await start(t, { plugin, websocket: true })
  const load = startLoad(t, target, { connections: 5, keepAlive: true })
  const { clients, stop } = webSocketClients(t, target, '/ws', clientCount)
  await waitFor(() => clients.every((c) => c.greetings.length === 1), 20000, 'every client to be greeted by generation 1')
  let pid = service.pid
  for (let version = 2; version <= 4; version++) {
    writeRelease(dir, { version, plugin, websocket: true })
    const signalled = Date.now()
    process.kill(pid, 'SIGUSR2')
    const next = await service.generationServing(version)
    await waitFor(() => clients.every((c) => c.greetings.at(-1).version === version), 20000, `every client to reconnect to generation ${version}`)
    const closes = clients.map((c) => c.closes.at(-1))
    t.same([...new Set(closes.map((c) => c.code))], [1001], `reload ${version - 1}: every client was closed with 1001 Going Away`)
    t.ok(closes.every((c) => c.reason === 'server reloading' && c.t >= signalled), 'with a reason, after the reload began')
    t.ok(clients.every((c) => c.closes.length === version - 1), 'one close per client per reload, no more')
    t.ok(clients.every((c) => c.greetings.at(-1).pid === next), 'each reconnected to the new generation')
    const { peak, span } = burst(closes.map((c) => c.t))
    t.ok(span >= closeSpread / 2, `the closes are spread: ${span} ms from the first to the last (window ${closeSpread} ms)`)
    // Spread evenly that is 1.5 per 100 ms; all in one instant (as before) would be 100%.
    t.ok(peak <= clientCount * 0.25, `no 100 ms holds more than a quarter of them (at most ${peak} of ${clientCount})`)
    const drained = await drainedLine(service, pid)
    t.equal(drained.cutConnections, 0, 'the old generation cut nothing')
    t.ok(drained.durationMs < plugin.drainTimeout, `it drained before drainTimeout (${drained.durationMs} ms)`)
    await waitUntilGone(pid)
    pid = next
  }
  const all = clients.flatMap((c) => c.closes)
  t.equal(all.filter((c) => c.code === 1006).length, 0, '0 abnormal closes (1006)')
  t.same(clients.flatMap((c) => c.errors), [], 'no client saw an error (no refused connection, no reset)')
  stop()
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'the HTTP load beside them lost nothing')
})

for (const { connectionHandoff, overHttp2 } of [{ connectionHandoff: true }, { connectionHandoff: false }, { connectionHandoff: true, overHttp2: true }]) {
  const over = overHttp2 ? 'over HTTP/2' : `connectionHandoff ${connectionHandoff}`
  test(`EventSource clients over 2 reloads (${over}): the streams end cleanly and resume on the new generation with Last-Event-ID`, async (t) => {
    const plugin = { idleGrace: 300, readyTimeout: 20000, drainTimeout: 6000, closeSpread: 1500, probation: 300, connectionHandoff }
    const release = { plugin, http2: overHttp2 === true }
    const { dir, service, target } = await start(t, release)
    // Like a browser: reconnects reuse a kept-alive connection (HTTP/1.1) or the session (HTTP/2).
    const agent = new http.Agent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    const sources = Array.from({ length: 5 }, () => eventSource(t, target, '/sse', { agent, http2: overHttp2 }))
    await waitFor(() => sources.every((s) => s.state.events.length > 0), 10000, 'the first events')
    let pid = service.pid
    for (let version = 2; version <= 3; version++) {
      writeRelease(dir, { version, ...release })
      process.kill(pid, 'SIGUSR2')
      const next = await service.generationServing(version)
      await waitFor(() => sources.every((s) => s.state.events.at(-1).data.version === version), 15000, `every stream to resume on generation ${version}`)
      t.ok(sources.every((s) => s.state.events.at(-1).data.pid === next), 'served by the new generation')
      const drained = await drainedLine(service, pid)
      t.equal(drained.cutConnections, 0, 'the old generation cut no stream')
      await waitUntilGone(pid)
      pid = next
    }
    for (const { state, stop } of sources) {
      stop()
      t.same(state.errors, [], 'no reset, no error: each stream ended cleanly')
      t.ok(state.ends >= 2, `it ended (and reconnected) at each reload (${state.ends} ends)`)
      const ids = state.events.map((e) => Number(e.id))
      t.same(ids, ids.map((_, i) => i + 1), 'every event once, in order: no gap, no repeat across the reconnects')
      const resumed = state.requests.slice(1)
      t.ok(resumed.every((r) => r.lastEventId !== undefined), 'every reconnect sent Last-Event-ID')
      const versions = state.events.map((e) => e.data.version)
      t.same([...new Set(versions)], [1, 2, 3], 'from generation 1 to 2 to 3, never back')
      if (overHttp2) t.equal(state.sessions, 3, 'one HTTP/2 session per generation: each old one was sent away (GOAWAY)')
    }
  })
}

test("another upgraded protocol: the app's 'upgradeDraining' listener gets the connection and the time it has left, inside closeSpread", async (t) => {
  const plugin = { idleGrace: 300, readyTimeout: 20000, drainTimeout: 5000, closeSpread: 1000, probation: 300 }
  const { dir, service, target } = await start(t, { plugin, upgrade: true, upgradeHook: true })
  const upgraded = await RawConnection.open(target)
  t.teardown(() => upgraded.close())
  upgraded.write('GET /echo-protocol HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n')
  await waitFor(() => /^HTTP\/1.1 101/.test(upgraded.buffer.toString()), 10000, 'the 101')
  upgraded.buffer = Buffer.alloc(0)
  writeRelease(dir, { version: 2, plugin, upgrade: true, upgradeHook: true })
  process.kill(service.pid, 'SIGUSR2')
  await service.generationServing(2)
  await waitFor(() => upgraded.closed, 10000, 'the app to close the upgraded connection')
  const drainStart = (await service.waitForEvent('draining', (l) => l.pid === service.pid && l.reason === 'reload')).time
  const closedAfter = Date.now() - drainStart
  t.equal(upgraded.buffer.toString(), 'going away\n', "the app's goodbye arrived, then the end (no reset)")
  const asked = await service.waitForLine((l) => l.pid === service.pid && l.event === 'upgrade-draining', 5000, 'the listener to log')
  t.same([asked.url, asked.upgrade], ['/echo-protocol', 'echo'], 'with the connection and the request that upgraded it')
  t.ok(asked.timeLeft > plugin.drainTimeout - plugin.closeSpread - 500 && asked.timeLeft <= plugin.drainTimeout,
    `and the time it has left before drainTimeout (${asked.timeLeft} ms), at a moment inside closeSpread`)
  t.ok(closedAfter < plugin.drainTimeout, `closed ${closedAfter} ms into the drain, before drainTimeout`)
  const drained = await drainedLine(service, service.pid)
  t.equal(drained.cutConnections, 0, 'nothing was cut')
  // A new upgraded connection goes to the new generation.
  const fresh = await RawConnection.open(target)
  t.teardown(() => fresh.close())
  fresh.write('GET /echo-protocol HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n')
  await waitFor(() => /^HTTP\/1.1 101/.test(fresh.buffer.toString()), 10000, 'the 101')
  fresh.buffer = Buffer.alloc(0)
  fresh.write('ping')
  await waitFor(() => fresh.buffer.length >= 6, 10000, 'the echo')
  t.equal(fresh.buffer.toString(), '2:ping', 'served by generation 2')
  await sleep(10)
})

test('a drain cut before its time (maxDrainingGenerations): WebSockets whose moment had not come get 1001 then, not a reset', async (t) => {
  // A long closeSpread: at the cut, ~1 s into the drain, most of generation 1's WebSockets are still open.
  const plugin = { idleGrace: 300, probation: 300, drainTimeout: 20000, closeSpread: 15000, maxDrainingGenerations: 1 }
  const { dir, service, target } = await start(t, { plugin, websocket: true })
  const { clients, stop } = webSocketClients(t, target, '/ws', 10)
  await waitFor(() => clients.every((c) => c.greetings.length === 1), 20000, 'every client to be greeted')
  const pid1 = service.pid
  writeRelease(dir, { version: 2, plugin, websocket: true })
  process.kill(pid1, 'SIGUSR2')
  const pid2 = await service.generationServing(2)
  writeRelease(dir, { version: 3, plugin, websocket: true })
  process.kill(pid2, 'SIGUSR2')
  await service.generationServing(3)
  // Cut as soon as generation 2 drains too: gone long before its closeSpread.
  const cutAt = Date.now()
  await waitUntilGone(pid1, 10000)
  t.ok(Date.now() - cutAt < 6000, `generation 1 was cut, not drained over its closeSpread (gone ${Date.now() - cutAt} ms after generation 3 served)`)
  await waitFor(() => clients.every((c) => c.closes.length >= 1), 5000, 'every generation 1 WebSocket to be closed')
  stop()
  const first = clients.map((c) => c.closes[0])
  t.same(first.map((c) => c.code), Array(10).fill(1001), 'every WebSocket of generation 1 was closed with 1001 (Going Away), none reset (1006)')
})

test('SIGTERM: WebSocket clients get 1001 too, spread over closeSpread, and the process exits 0 with nothing cut', async (t) => {
  const plugin = { idleGrace: 300, drainTimeout: 5000, closeSpread: 1000 }
  const { service, target } = await start(t, { plugin, websocket: true })
  const { clients, stop } = webSocketClients(t, target, '/ws', 20)
  await waitFor(() => clients.every((c) => c.greetings.length === 1), 20000, 'every client to be greeted')
  process.kill(service.pid, 'SIGTERM')
  const exit = await Promise.race([service.exit, sleep(15000).then(() => 'timeout')])
  stop()
  t.same(exit, { code: 0, signal: null }, 'exited 0')
  const closes = clients.map((c) => c.closes[0])
  t.same([...new Set(closes.map((c) => `${c.code} ${c.reason}`))], ['1001 server shutting down'], 'every client was closed with 1001, saying why')
  t.ok(burst(closes.map((c) => c.t)).span >= 500, 'spread over the window')
  const drained = await drainedLine(service, service.pid)
  t.same([drained.reason, drained.cutConnections], ['shutdown', 0], 'a shutdown drain that cut nothing')
})

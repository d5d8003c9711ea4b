'use strict'
// socket.io on Fastify's server (`new Server(fastify.server)`): its WebSockets are ws's own, not
// @fastify/websocket's, so the plugin hands them to 'upgradeDraining'. With the README's listener
// each is closed at its moment in closeSpread and its client reconnects to the new generation at
// once; without one they stay until drainTimeout and are cut (the drain warns).
const { test } = require('tap')
const { io } = require('socket.io-client')
const { Service, tempDir, writeRelease, waitUntilGone, waitFor } = require('./helpers/processes')

const CLIENTS = 5
const DRAIN_TIMEOUT = 20000
const PLUGIN = { idleGrace: 300, probation: 300, drainTimeout: DRAIN_TIMEOUT, closeSpread: 1000 }

function connectClients (t, url) {
  const clients = []
  for (let i = 0; i < CLIENTS; i++) {
    // WebSocket only, as the README advises (long-polling sessions live in one process).
    const socket = io(url.origin, { transports: ['websocket'], reconnectionDelay: 100, reconnectionDelayMax: 200 })
    const client = { socket, hellos: [], disconnects: [] }
    socket.on('hello', (hello) => client.hellos.push(hello))
    socket.on('disconnect', (reason) => client.disconnects.push(reason))
    clients.push(client)
  }
  t.teardown(() => { for (const { socket } of clients) socket.close() })
  return clients
}

test('socket.io WebSocket clients: closed within closeSpread at each reload, each reconnects to the new generation', async (t) => {
  const dir = tempDir(t)
  const release = (version) => ({ version, plugin: PLUGIN, socketIo: 'closeOnUpgradeDraining' })
  writeRelease(dir, release(1))
  const service = Service.start(t, { cwd: dir, deadlineMs: 120000 })
  const url = await service.listening()
  const clients = connectClients(t, url)
  await waitFor(() => clients.every((c) => c.hellos.length === 1), 10000, 'every client greeted by generation 1')
  let pid = service.pid
  for (const version of [2, 3]) {
    writeRelease(dir, release(version))
    process.kill(pid, 'SIGUSR2')
    const next = await service.generationServing(version)
    const drained = await service.waitForEvent('drained', (l) => l.pid === pid, DRAIN_TIMEOUT + 10000)
    t.equal(drained.cutConnections, 0, `generation ${version - 1}: no connection cut`)
    t.ok(drained.durationMs < DRAIN_TIMEOUT / 2, `generation ${version - 1} drained in ${drained.durationMs} ms, not at drainTimeout`)
    await waitUntilGone(pid)
    await waitFor(() => clients.every((c) => c.hellos.at(-1)?.version === version), 10000, `every client greeted by generation ${version}`)
    pid = next
  }
  for (const client of clients) {
    t.same(client.disconnects, ['transport close', 'transport close'], 'closed once at each reload, and never with an error')
    t.same(client.hellos.map((h) => h.version), [1, 2, 3], 'greeted once by each generation')
  }
  t.equal(service.find((l) => l.hotReload === 'upgrades-unhandled'), undefined, 'the drain had nothing to warn about')
})

test('socket.io without the listener: its WebSockets are cut at drainTimeout, and the drain says so', async (t) => {
  const dir = tempDir(t)
  const plugin = { ...PLUGIN, drainTimeout: 2000 }
  writeRelease(dir, { version: 1, plugin, socketIo: true })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const clients = connectClients(t, url)
  await waitFor(() => clients.every((c) => c.hellos.length === 1), 10000, 'every client greeted by generation 1')
  writeRelease(dir, { version: 2, plugin, socketIo: true })
  process.kill(service.pid, 'SIGUSR2')
  const warned = await service.waitForLine((l) => l.hotReload === 'upgrades-unhandled', 10000, 'the drain\'s warning')
  t.equal(warned.otherUpgrades, CLIENTS, 'it counts the WebSockets it cannot close')
  const drained = await service.waitForEvent('drained', (l) => l.pid === service.pid, 15000)
  t.equal(drained.cutConnections, CLIENTS, 'they are cut at drainTimeout')
  await waitFor(() => clients.every((c) => c.hellos.at(-1)?.version === 2), 10000, 'every client greeted by generation 2')
})

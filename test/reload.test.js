'use strict'
// Chained reloads under real load: every request is counted, every version must be served, and
// only the last generation may be left.
const { test } = require('tap')
const { Service, tempDir, writeRelease, waitUntilGone, sleep, fdCount, isAlive } = require('./helpers/processes')
const fs = require('node:fs')
const { startLoad } = require('./helpers/load')

const PLUGIN = { idleGrace: 300, drainTimeout: 10000, readyTimeout: 20000 }
// Each chain waits for every old generation to be gone, which it is once its drain is over and its
// successor's probation too (2 s by default). The keep-alive chain keeps the default probation; the
// others, which are not about it, use a short one.
const SHORT_PROBATION = { ...PLUGIN, probation: 300 }

async function chainedReloads (t, { keepAlive, connections, plugin = PLUGIN }) {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin })
  // 5 reloads under saturating load took 92 s on a machine at load 18: past the helper's 90 s deadline.
  const service = Service.start(t, { cwd: dir, deadlineMs: 180000 })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  const load = startLoad(t, target, { connections, keepAlive })
  await sleep(300)
  const pid = await service.reloadThrough(dir, 6, plugin)
  const stats = await load.stop()
  t.comment(JSON.stringify(stats))
  t.equal(stats.failed, 0, 'no request failed (refused, reset, timeout)')
  t.same(stats.errors, {}, 'no client errors')
  t.equal(stats.non2xx, 0, 'no non-2xx response')
  t.ok(stats.ok > 500, `load ran (${stats.ok} requests)`)
  for (let version = 1; version <= 6; version++) t.ok(stats.versions[version] > 0, `version ${version} was served`)
  t.same(service.alive(), [pid], 'only the last generation is left')
  const onCloseVersions = service.filter((l) => l.event === 'onClose-ran').map((l) => l.version).sort()
  t.same(onCloseVersions, [1, 2, 3, 4, 5], 'the onClose hooks ran in every old generation')
  // Each reload says how long the successor's own boot took, within the reload's duration.
  const reloaded = service.filter((l) => l.hotReloadEvent === 'reloaded')
  t.equal(reloaded.length, 5, 'each reload emitted reloaded')
  t.ok(reloaded.every((l) => Number.isInteger(l.bootMs) && l.bootMs > 0 && l.bootMs <= l.durationMs),
    `every reloaded result has bootMs within durationMs (${reloaded.map((l) => `${l.bootMs}/${l.durationMs}`).join(', ')})`)
  const drained = service.filter((l) => l.hotReloadEvent === 'drained')
  t.equal(drained.length, 5, 'each old generation logged its drain')
  t.ok(drained.every((l) => l.cutConnections === 0), 'no drain had to cut connections')
  return { service, pid }
}

test('5 chained reloads under keep-alive load: 0 failed requests', async (t) => {
  const { pid } = await chainedReloads(t, { keepAlive: true, connections: 30 })
  t.ok(isAlive(pid))
})

test('5 chained reloads under connection-per-request load: 0 failed requests', async (t) => {
  await chainedReloads(t, { keepAlive: false, connections: 20, plugin: SHORT_PROBATION })
})

function rssKb (pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1])
}

test('reloads chain with no growth in fds, memory or processes', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: SHORT_PROBATION })
  const service = Service.start(t, { cwd: dir })
  await service.listening()
  let pid = service.pid
  await sleep(200)
  const fds = [fdCount(pid)]
  const rss = [rssKb(pid)]
  for (let version = 2; version <= 6; version++) {
    process.kill(pid, 'SIGUSR2')
    const next = await service.generationServing(version)
    await waitUntilGone(pid)
    pid = next
    await sleep(200)
    fds.push(fdCount(pid))
    rss.push(rssKb(pid))
    t.same(service.alive(), [pid], `one process after reload ${version - 1}`)
  }
  t.ok(Math.max(...fds) - Math.min(...fds) <= 1, `fd count stays flat (${fds.join(', ')})`)
  t.ok(rss[rss.length - 1] < rss[0] * 1.5, `RSS does not grow (${rss.join(', ')} kB)`)
})

test('the plugin registered in a context with a prefix: its probes answer under it, and so does its own readiness check; reloads succeed under load', async (t) => {
  const path = require('node:path')
  const { REPO } = require('./helpers/processes')
  const dir = tempDir(t)
  // As an app whose routes all live under /api registers it.
  fs.writeFileSync(path.join(dir, 'app.js'), `'use strict'
const fs = require('node:fs')
const Fastify = require(require.resolve('fastify', { paths: [${JSON.stringify(REPO)}] }))
const hotReload = require(${JSON.stringify(REPO)})
const release = JSON.parse(fs.readFileSync('release.json', 'utf8'))
const app = Fastify({ logger: true })
app.register(async (api) => {
  await api.register(hotReload, release.plugin)
  require(${JSON.stringify(REPO + '/test/fixtures/log-events.js')}).logHotReloadEvents(api)
  api.get('/', async () => ({ version: release.version, pid: process.pid }))
}, { prefix: '/api' })
app.listen({ port: 0, host: '127.0.0.1' })
`)
  writeRelease(dir, { version: 1, plugin: SHORT_PROBATION })
  const service = Service.start(t, { cwd: dir, script: path.join(dir, 'app.js') })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  const health = await fetch(new URL('/api/health', url))
  t.equal(health.status, 200, '/api/health answers')
  const load = startLoad(t, target, { connections: 10, keepAlive: true, path: '/api/' })
  await sleep(300)
  let pid = await service.generationServing(1)
  for (let version = 2; version <= 3; version++) {
    writeRelease(dir, { version, plugin: SHORT_PROBATION })
    process.kill(pid, 'SIGUSR2')
    const next = await service.generationServing(version)
    t.not(next, pid, `generation ${version} serves in a new process`)
    pid = next
  }
  await sleep(1000)
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed')
  t.same(Object.keys(stats.versions).sort(), ['1', '2', '3'], 'every release answered')
  t.notOk(service.find((l) => l.hotReload === 'reload-failed' || l.supervisor === 'generation-failed'), 'no reload failed')
})

test('reload() asked of a generation that has handed over answers HOT_RELOAD_NOT_SERVING naming the generation that serves afterwards', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN, reloadWhenDraining: true })
  const service = Service.start(t, { cwd: dir })
  await service.listening()
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  process.kill(service.pid, 'SIGUSR2')
  const successor = await service.generationServing(2)
  const { result } = await service.waitForLine((l) => l.event === 'reload-while-draining' && l.pid === service.pid, 15000, 'the old generation\'s answer')
  t.match(result, { ok: false, error: 'HOT_RELOAD_NOT_SERVING', generation: 2, pid: successor })
})

test('an app forked with an IPC channel (fd 3, as nodemon and PM2 fork mode fork it) reloads standalone: its successor does not take that channel for its own', async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  // The parent forks the app (NODE_CHANNEL_FD=3 in its environment) and stays, as a forker does.
  const forker = `const { fork } = require('node:child_process'); const child = fork(${JSON.stringify(require('./helpers/processes').FIXTURE_APP)}, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }); child.on('exit', (code) => process.exit(code ?? 1))`
  const service = Service.start(t, { cwd: dir, args: ['-e', forker] })
  const first = await service.generationServing(1)
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  process.kill(first, 'SIGUSR2')
  const second = await service.generationServing(2)
  t.not(second, first, 'generation 2 serves, in a new process')
  t.notOk(service.find((l) => l.hotReload === 'reload-failed'), 'the reload did not fail')
})

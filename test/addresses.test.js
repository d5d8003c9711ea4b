'use strict'
// Every listening socket is handed over: both addresses of 'localhost', and unix socket paths.
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { Service, tempDir, writeRelease, waitUntilGone, sleep } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')

// Two tests at a time: each waits mostly on reloads and drains (15 clients of load), so their waits
// overlap. Each has its own service, addresses and load.
tap.jobs = 2

// A short probation: each reload below waits for the old generation to be gone, which it is only once
// its successor's probation is over too (2 s by default); the probation is not what this file tests.
const PLUGIN = { idleGrace: 300, probation: 300 }

function canBindIPv6 () {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen({ host: '::1', port: 0 }, () => server.close(() => resolve(true)))
  })
}

async function reloadUnderLoad (t, service, dir, loads, reloads = 3) {
  let pid = service.pid
  for (let version = 2; version <= reloads + 1; version++) {
    writeRelease(dir, { version, plugin: PLUGIN, listen: JSON.parse(fs.readFileSync(path.join(dir, 'release.json'))).listen })
    process.kill(pid, 'SIGUSR2')
    const next = await service.generationServing(version)
    await waitUntilGone(pid)
    pid = next
    await sleep(200)
  }
  const results = await Promise.all(loads.map((load) => load.stop()))
  return { pid, results }
}

test("host 'localhost' with both 127.0.0.1 and ::1: both addresses are handed over", async (t) => {
  if (!(await canBindIPv6())) {
    t.skip('this machine has no IPv6 loopback')
    return
  }
  const dir = tempDir(t)
  // The machine's localhost is 127.0.0.1 only: give the service its own /etc/hosts (a private
  // mount namespace; root only, as on the CI machine).
  fs.writeFileSync(path.join(dir, 'hosts'), '127.0.0.1 localhost\n::1 localhost\n')
  writeRelease(dir, { version: 1, plugin: PLUGIN, listen: { port: 0, host: 'localhost' } })
  const script = require('./helpers/processes').FIXTURE_APP
  const service = Service.start(t, {
    cwd: dir,
    command: 'unshare',
    args: ['--mount', 'sh', '-c', `mount --bind "${dir}/hosts" /etc/hosts && exec "${process.execPath}" "${script}"`]
  })
  const first = await service.listening()
  await service.waitForLine((l) => /Server listening at/.test(l.msg || '') && l.msg !== `Server listening at ${first.href.replace(/\/$/, '')}`, 10000, 'the second address')
  const port = Number(first.port)
  const loads = ['127.0.0.1', '::1'].flatMap((host) => [
    startLoad(t, { host, port }, { connections: 10, keepAlive: true }),
    startLoad(t, { host, port }, { connections: 5, keepAlive: false })
  ])
  await sleep(300)
  const { pid, results } = await reloadUnderLoad(t, service, dir, loads)
  t.comment(JSON.stringify(results.map((r) => ({ ok: r.ok, failed: r.failed, errors: r.errors, versions: r.versions }))))
  for (const [index, stats] of results.entries()) {
    const label = `${index < 2 ? '127.0.0.1' : '::1'} ${index % 2 === 0 ? 'keep-alive' : 'per-request'}`
    t.equal(stats.failed, 0, `${label}: no request failed`)
    t.equal(stats.non2xx, 0, `${label}: no non-2xx`)
    t.ok(stats.versions[4] > 0, `${label}: the last version served`)
  }
  const adopted = service.filter((l) => l.pid === pid && l.hotReload === 'adopted-socket').map((l) => l.address)
  t.equal(adopted.length, 2, `the last generation adopted both sockets (${adopted.join('; ')})`)
  t.same(service.alive(), [pid])
})

// 104 bytes: no room for `<path>.<pid>.tmp` under the 107 a unix socket address holds (the
// temporary name is then a short one in the same directory; once a plain bind, whose path the first
// reload removed).
for (const length of ['short', 'long']) {
  test(`a unix socket path listener is handed over, and the path survives every generation (a ${length} path)`, async (t) => {
    const dir = tempDir(t)
    const socketPath = length === 'short' ? path.join(dir, 'app.sock') : path.join(dir, 'a'.repeat(104 - Buffer.byteLength(dir) - 6) + '.sock')
    if (length === 'long') t.equal(Buffer.byteLength(socketPath), 104)
    writeRelease(dir, { version: 1, plugin: PLUGIN, listen: { path: socketPath } })
    const service = Service.start(t, { cwd: dir })
    await service.listening()
    t.ok(fs.statSync(socketPath).isSocket(), 'the socket file exists')
    const loads = [
      startLoad(t, { socketPath }, { connections: 10, keepAlive: true }),
      startLoad(t, { socketPath }, { connections: 5, keepAlive: false })
    ]
    await sleep(300)
    const { pid, results } = await reloadUnderLoad(t, service, dir, loads)
    for (const stats of results) {
      t.equal(stats.failed, 0, `no request failed (${JSON.stringify(stats.errors)})`)
      t.equal(stats.non2xx, 0)
      t.ok(stats.versions[4] > 0, 'the last version served')
    }
    t.ok(fs.statSync(socketPath).isSocket(), 'the socket path is still there after the old generations closed')
    t.same(fs.readdirSync(dir).filter((name) => name.includes('.tmp')), [], 'no temporary socket name left')
    process.kill(pid, 'SIGTERM')
    await waitUntilGone(pid)
    t.notOk(fs.existsSync(socketPath), 'a graceful shutdown removes the socket path')
  })
}

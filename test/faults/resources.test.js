'use strict'
// The machine says no: a successor that runs out of memory, a process out of file descriptors,
// a Node binary that is not there. The reload fails with the cause; the old generation serves on.
const fs = require('node:fs')
const { execFileSync } = require('node:child_process')
const { test } = require('tap')
const { writeRelease, isAlive, sleep, fdCount, vanishingExecutable } = require('../helpers/processes')
const { request, serviceUnderLoad } = require('./common')

const GOOD = { idleGrace: 300, readyTimeout: 20000, drainTimeout: 5000, probation: 300 }

async function reloadThroughApi (target) {
  return (await request(target, { method: 'POST', path: '/admin/reload', timeoutMs: 30000 })).body
}

async function expectServingOn (t, { service, target, stopLoads }, result, { code, message }) {
  await sleep(300)
  const stats = await stopLoads()
  t.comment(JSON.stringify({ result, stats }))
  t.equal(result.ok, false, 'reload() reports failure')
  t.equal(result.error.code, code, `with the code ${code}`)
  t.match(result.error.message, message, `and the cause (${result.error.message})`)
  t.ok(stats.every((s) => s.failed === 0 && s.non2xx === 0), 'no request failed')
  t.ok(stats.every((s) => Object.keys(s.versions).join() === '1'), 'release 1 answered every request')
  t.same(service.alive(), [service.pid], 'only the old generation is left')
  t.ok(service.find((l) => l.level === 50 && l.hotReload === 'reload-failed' && l.generation === 1), 'logged as an error')
}

test('a successor that runs out of memory while it boots', async (t) => {
  // The operator caps the successor's heap; release 2 needs more than that.
  const plugin = { ...GOOD, successor: { execArgv: ['--max-old-space-size=24'] } }
  const running = await serviceUnderLoad(t, { plugin, load: [{ connections: 5, keepAlive: true }, { connections: 5, keepAlive: false }] })
  writeRelease(running.dir, { version: 2, plugin, hogMemoryMb: 200 })
  const result = await reloadThroughApi(running.target)
  await expectServingOn(t, running, result, { code: 'HOT_RELOAD_SUCCESSOR_EXITED', message: /exited with (signal SIGABRT|signal SIGTRAP|code 134) before it was ready; it reported no cause: its stderr, which is the service's, may say$/ })
  t.match(running.service.stderr, /heap out of memory/, "Node's own report of the cause reaches the log")
})

test('out of file descriptors (EMFILE): the successor cannot be spawned; with the limit raised, the next reload works', async (t) => {
  // Keep-alive clients only: with no fd left, new connections cannot be accepted by anyone.
  const running = await serviceUnderLoad(t, { plugin: GOOD, load: { connections: 10, keepAlive: true } })
  const { service, target, dir } = running
  await sleep(300)
  const soft = execFileSync('prlimit', ['--pid', String(service.pid), '--nofile', '--noheadings', '--output', 'SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/)
  // One fd to spare: spawning needs several (the IPC socket pair, the exec error pipe).
  execFileSync('prlimit', ['--pid', String(service.pid), `--nofile=${fdCount(service.pid) + 1}:${soft[1]}`])
  writeRelease(dir, { version: 2, plugin: GOOD })
  const load = running.loads[0]
  // The reload goes through a signal: an HTTP request would need a new connection (an fd).
  process.kill(service.pid, 'SIGUSR2')
  const failure = await service.waitForEvent('reloadFailed', () => true, 15000)
  t.match(failure.error?.message, /could not start the successor .*EMFILE/, `the cause is named (${failure.error?.message})`)
  t.equal(failure.error?.code, 'HOT_RELOAD_SPAWN_FAILED')
  t.ok(isAlive(service.pid), 'the old generation lives')
  execFileSync('prlimit', ['--pid', String(service.pid), `--nofile=${soft[0]}:${soft[1]}`])
  const stats = await load.stop()
  t.comment(JSON.stringify(stats))
  t.equal(stats.failed, 0, 'no request failed on the open connections')
  t.same(Object.keys(stats.versions), ['1'])
  const result = await reloadThroughApi(target)
  t.equal(result.ok, true, 'with the limit back, the next reload works')
})

test('a Node binary that is not there (removed under the running service)', async (t) => {
  const execPath = vanishingExecutable(t)
  const plugin = { ...GOOD, successor: { execPath } }
  const running = await serviceUnderLoad(t, { plugin, load: [{ connections: 5, keepAlive: true }, { connections: 5, keepAlive: false }] })
  fs.rmSync(execPath)
  writeRelease(running.dir, { version: 2, plugin })
  const result = await reloadThroughApi(running.target)
  await expectServingOn(t, running, result, { code: 'HOT_RELOAD_SPAWN_FAILED', message: new RegExp(`${execPath}.*ENOENT`) })
})

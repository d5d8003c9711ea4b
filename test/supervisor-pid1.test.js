'use strict'
// The supervisor as PID 1 in a PID namespace (Docker's CMD), with one worker and with two: reloads
// under keep-alive load, the PID kept, every worker reaped, a graceful SIGTERM. Each test puts 30
// clients of load on its own supervisor: they run one at a time.
const path = require('node:path')
const { test } = require('tap')
const { Service, BIN, FIXTURE_APP, cli, servingTarget, tempDir, writeRelease, waitFor, isAlive, sleep, childrenOf: children, childPids } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')

const zombieChildren = (pid) => children(pid).filter((c) => c.state === 'Z').map((c) => c.pid)

const PLUGIN = { idleGrace: 300 }

// With one worker, and with --workers 2 (PID 1 reaps every worker of every generation).
for (const workers of [1, 2]) {
  const last = workers === 1 ? 6 : 4
  test(`as PID 1 in a PID namespace${workers > 1 ? `, --workers ${workers}` : ''}: ${last - 1} reloads under keep-alive load, 0 failed, same PID, no zombie, graceful SIGTERM`, { buffered: false }, async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const control = path.join(dir, 'ctl', 'app.sock')
    const service = Service.start(t, {
      cwd: dir,
      command: 'unshare',
      args: ['--pid', '--fork', '--mount-proc', process.execPath, BIN, 'start', '--control', control, '--workers', String(workers), '--', process.execPath, FIXTURE_APP],
      trackLogPids: false
    })
    const target = await servingTarget(service)
    const supervisorOuterPid = await waitFor(() => childPids(service.pid)[0], 5000, 'the supervisor process')
    service.pids.add(supervisorOuterPid)
    const load = startLoad(t, target, { connections: 30, keepAlive: true })
    await sleep(300)
    for (let version = 2; version <= last; version++) {
      writeRelease(dir, { version, plugin: PLUGIN })
      const reload = await cli(['reload', '--control', control, '--json'])
      t.equal(reload.code, 0, `reload ${version - 1} exits 0`)
      const result = JSON.parse(reload.stdout)
      t.equal(result.ok, true)
      t.ok(Number.isInteger(result.bootMs) && result.bootMs > 0 && result.bootMs <= result.durationMs, `the result has the new workers' own boot within its duration (${result.bootMs} of ${result.durationMs} ms)`)
      const status = JSON.parse((await cli(['status', '--control', control, '--json'])).stdout)
      t.equal(status.pid, 1, 'the supervisor is PID 1 and stays so')
      t.equal(status.generation, version)
      await sleep(400)
    }
    const stats = await load.stop()
    t.comment(JSON.stringify(stats))
    t.equal(stats.failed, 0, 'no request failed')
    t.equal(stats.non2xx, 0, 'no non-2xx')
    for (let version = 1; version <= last; version++) t.ok(stats.versions[version] > 0, `version ${version} served`)
    await waitFor(() => childPids(supervisorOuterPid).length === workers, 10000, 'old workers to exit')
    t.same(zombieChildren(supervisorOuterPid), [], 'no zombie left under the supervisor')
    t.ok(isAlive(supervisorOuterPid), 'the supervisor is the same process throughout')
    process.kill(supervisorOuterPid, 'SIGTERM')
    const exit = await service.exit
    t.same(exit, { code: 0, signal: null }, 'SIGTERM to PID 1 stops everything gracefully (exit 0)')
    t.ok(await service.waitForLine((l) => l.supervisor === 'stopped' && l.exitCode === 0, 5000, 'the stopped line'))
    t.notOk(isAlive(supervisorOuterPid), 'the supervisor is gone')
    t.same(childPids(supervisorOuterPid), [], 'and no worker is left')
  })
}

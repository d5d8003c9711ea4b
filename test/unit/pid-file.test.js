'use strict'
// lib/pid-file.ts: where a pid file can be kept, tried for real (root passes every permission check).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { pidFileProblem, writePidFile, readPidFile } = require('../../dist/lib/pid-file')

function dir (t) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-pid-'))
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }))
  return d
}

test('a writable directory: no problem, and the trial leaves nothing behind', async (t) => {
  const d = dir(t)
  t.equal(pidFileProblem(path.join(d, 'app.pid')), null)
  t.same(fs.readdirSync(d), [], 'no file left')
  writePidFile(path.join(d, 'app.pid'), 1234)
  t.equal(readPidFile(path.join(d, 'app.pid')), 1234)
})

test('a missing directory, a regular file as the directory, a directory that refuses files', async (t) => {
  const d = dir(t)
  t.match(pidFileProblem(path.join(d, 'missing', 'app.pid')), /^directory .*missing is missing \(ENOENT\)$/)
  fs.writeFileSync(path.join(d, 'file'), '')
  t.match(pidFileProblem(path.join(d, 'file', 'app.pid')), /^.*\/file is not a directory$/)
  // /proc refuses new files even to root, whatever its mode says.
  t.match(pidFileProblem('/proc/fhr-app.pid'), /^directory \/proc is not writable \(E[A-Z]+\)$/)
  const readOnly = path.join(d, 'ro')
  fs.mkdirSync(readOnly, { mode: 0o500 })
  if (process.getuid() !== 0) t.match(pidFileProblem(path.join(readOnly, 'app.pid')), /is not writable \(EACCES\)/)
  else t.comment('root: a mode 500 directory does not refuse files to us; /proc stands in for it above')
})

test('the reload record: a rollback marks the last good reload, with what serves again; a failed one is left as it is', async (t) => {
  const { ServiceStatus } = require('../../dist/lib/service-status')
  const { readReloadRecord } = require('../../dist/lib/pid-file')
  const pidFile = path.join(dir(t), 'app.pid')
  const status = new ServiceStatus(undefined, pidFile, { warn: () => t.fail('no warning') })
  status.recordReload({ ok: true, generation: 2, pid: 222, durationMs: 300 }, 111, 2000)
  t.match(readReloadRecord(pidFile), { ok: true, generation: 2, pid: 222, fromPid: 111, probationMs: 2000 })
  t.notOk('rolledBack' in readReloadRecord(pidFile), 'no rollback yet')
  status.recordRollback('generation 2 (pid 222) exited with code 1', { generation: 1, pid: 111 })
  t.match(readReloadRecord(pidFile), { ok: true, generation: 2, rolledBack: 'generation 2 (pid 222) exited with code 1', servesAgain: { generation: 1, pid: 111 } }, 'the same record, marked')
  status.recordReload({ ok: false, generation: 1, pid: 111, durationMs: 100, error: Object.assign(new Error('boom'), { code: 'HOT_RELOAD_SUCCESSOR_EXITED' }) }, 111, 2000)
  status.recordRollback('late', { generation: 1, pid: 111 })
  t.notOk('rolledBack' in readReloadRecord(pidFile), 'a failed reload has nothing to roll back')
})

test('once the service stops, its pid file and reload record are gone and stay gone: a reload the stop cancelled writes no record after', async (t) => {
  const { ServiceStatus } = require('../../dist/lib/service-status')
  const d = dir(t)
  const pidFile = path.join(d, 'app.pid')
  const status = new ServiceStatus(undefined, pidFile, { warn: () => t.fail('no warning') })
  status.servingPid(process.pid)
  status.recordReload({ ok: true, generation: 2, pid: 222, durationMs: 300 }, process.pid, 0)
  t.same(fs.readdirSync(d).sort(), ['app.pid', 'app.pid.reload.json'])
  status.stopping(process.pid)
  t.same(fs.readdirSync(d), [], 'both removed at the stop')
  status.recordReload({ ok: false, generation: 2, pid: process.pid, durationMs: 50, error: Object.assign(new Error('reload cancelled: the supervisor is stopping'), { code: 'HOT_RELOAD_NOT_SERVING' }) }, process.pid, 0)
  status.servingPid(process.pid)
  t.same(fs.readdirSync(d), [], 'nothing written again after it')
})

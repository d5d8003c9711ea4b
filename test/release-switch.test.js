'use strict'
// Deploys switch a `current -> releases/vN` symlink; the successor starts from the logical working
// directory and so runs the new release's code.
const fs = require('node:fs')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { Service, tempDir, writeRelease, waitUntilGone, FIXTURE_APP } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')

// Two tests at a time: each waits mostly on boots and reloads (10 clients of load), so their waits
// overlap. Each has its own releases, service and port.
tap.jobs = 2

function makeRelease (root, version) {
  const dir = path.join(root, 'releases', `v${version}`)
  fs.mkdirSync(dir, { recursive: true })
  // Each release has its own copy of the code: a reload must pick up the new file, not the old one.
  fs.copyFileSync(FIXTURE_APP, path.join(dir, 'app.js'))
  // A short probation: each reload waits for the old generation to be gone, which it is only once its
  // successor's probation is over too (2 s by default); the probation is not what this file tests.
  writeRelease(dir, { version, plugin: { idleGrace: 300, probation: 300 } })
  return dir
}

function switchCurrent (root, version) {
  const next = path.join(root, `current.${version}`)
  fs.symlinkSync(path.join('releases', `v${version}`), next)
  fs.renameSync(next, path.join(root, 'current')) // atomic, as deploy tools do it
}

for (const how of ['cd current && node app.js', 'node current/app.js']) {
  test(`a release switch through the current symlink is picked up (${how})`, async (t) => {
    const root = tempDir(t)
    makeRelease(root, 1)
    switchCurrent(root, 1)
    const inCurrent = how.startsWith('cd')
    const cwd = inCurrent ? path.join(root, 'current') : root
    if (!inCurrent) fs.symlinkSync(path.join('current', 'release.json'), path.join(root, 'release.json'))
    const service = Service.start(t, { cwd, script: inCurrent ? 'app.js' : 'current/app.js' })
    const url = await service.listening()
    // No wait for generation 1 to serve: a signal that lands a moment before it does is deferred, not fatal.
    const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10 })
    let pid = service.pid
    for (const version of [2, 3]) {
      makeRelease(root, version)
      switchCurrent(root, version)
      process.kill(pid, 'SIGUSR2')
      const next = await service.generationServing(version)
      await waitUntilGone(pid)
      pid = next
      const cwdOfNew = fs.readlinkSync(`/proc/${pid}/cwd`)
      t.equal(cwdOfNew, inCurrent ? fs.realpathSync(path.join(root, 'releases', `v${version}`)) : fs.realpathSync(root), `generation ${version} runs in the right directory`)
    }
    const stats = await load.stop()
    t.equal(stats.failed, 0, 'no request failed')
    t.ok(stats.versions[3] > 0, 'the newest release serves')
    t.ok(stats.versions[2] > 0, 'the middle release served')
    t.same(service.alive(), [pid])
  })
}

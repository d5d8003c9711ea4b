'use strict'
// examples/deploy/deploy.sh against a supervised service: a good release serves, a broken one is
// switched back automatically, and no request fails either way; one that crashes within its
// probation is switched back too.
const fs = require('node:fs')
const path = require('node:path')
const { execFile } = require('node:child_process')
const { test } = require('tap')
const { Service, REPO, FIXTURE_APP, tempDir, writeRelease } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')

const BIN = path.join(REPO, 'bin/fastify-hot-reload.js')
const DEPLOY = path.join(REPO, 'examples/deploy/deploy.sh')

function source (root, version, extra = {}) {
  const dir = path.join(root, 'build', `v${version}`)
  fs.mkdirSync(dir, { recursive: true })
  fs.copyFileSync(FIXTURE_APP, path.join(dir, 'app.js'))
  writeRelease(dir, { version, plugin: { idleGrace: 300 }, ...extra })
  return dir
}

function deploy (root, dir, name, control) {
  return new Promise((resolve) => {
    execFile('bash', [DEPLOY, dir, name], {
      timeout: 60000,
      env: { ...process.env, APP_ROOT: root, RELOAD_CMD: `${process.execPath} ${BIN} reload --control ${control} --wait-probation` }
    }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }))
  })
}

test('deploy.sh: a good release serves; a broken one is switched back, with 0 failed requests; so is one that crashes within its probation', async (t) => {
  const root = tempDir(t)
  const control = path.join(root, 'run', 'app.sock')
  fs.mkdirSync(path.join(root, 'releases'))
  fs.cpSync(source(root, 1), path.join(root, 'releases', 'v1'), { recursive: true })
  fs.symlinkSync('releases/v1', path.join(root, 'current'))
  const service = Service.start(t, {
    cwd: path.join(root, 'current'),
    args: [BIN, 'start', '--control', control, '--ready-timeout', '5000', '--', process.execPath, 'app.js']
  })
  const url = await service.listening()
  const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10, keepAlive: true })

  const good = await deploy(root, source(root, 2), 'v2', control)
  t.equal(good.code, 0, `a good release deploys (${good.stderr.trim()})`)
  t.match(good.stdout, /release v2 is serving/)
  t.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/v2')

  const bad = await deploy(root, source(root, 3, { throwAtBoot: true }), 'v3', control)
  t.equal(bad.code, 1, 'a broken release fails the deploy')
  t.match(bad.stderr, /reload failed; the previous release keeps serving/)
  t.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/v2', 'current points back at the good release')

  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed')
  t.equal(stats.non2xx, 0)
  t.ok(stats.versions[2] > 0, 'v2 served')
  t.notOk(stats.versions[3], 'v3 never served')

  // Ready, serving, then dead within the probation: the supervisor rolls it back, and so does the
  // deploy. (Without load: what the crashing worker had in flight dies with it, as in any crash.)
  const late = await deploy(root, source(root, 4, { exitAfterServingMs: 300 }), 'v4', control)
  t.equal(late.code, 1, 'a release that crashes within its probation fails the deploy')
  t.match(late.stderr, /HOT_RELOAD_ROLLED_BACK/, 'the reload\'s failure, on stderr')
  t.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/v2', 'current points back at the good release again')
  t.equal((await new Promise((resolve) => execFile(process.execPath, [BIN, 'status', '--control', control, '--json'], (err, stdout) => resolve(err ? {} : JSON.parse(stdout))))).generation, 2, 'generation 2 (v2) serves in the end')
})

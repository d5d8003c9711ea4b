'use strict'
// Yarn's Plug'n'Play: packages stay in zip archives, readable only through Yarn's runtime, which
// the app is started with (`node -r ./.pnp.cjs app.js`, what Yarn's docs give for production, or
// `yarn node app.js`). The packed package installed with real Yarn 4 (nodeLinker: pnp), then
// reloads under load. With keepPid the supervisor's own script is in the zip: its image must keep
// that preload (it died at start before, and the service never served).
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { REPO, Service, childrenOf, descendantsOf, tempDir, waitUntilGone, writeRelease, sleep } = require('./helpers/processes')
const { startLoad } = require('./helpers/load')

const YARN = require.resolve('@yarnpkg/cli-dist/bin/yarn.js')
const PLUGIN = { idleGrace: 300, drainTimeout: 10000, readyTimeout: 20000, probation: 500 }
const canExecve = typeof process.execve === 'function'

/** Runs a command to its end (deadline `timeout`); resolves with its exit code and output. */
function run (command, args, options) {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 120000, ...options }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }))
  })
}

const versionOf = (name) => require(path.join(REPO, 'node_modules', name, 'package.json')).version

/** The app a user writes: both packages by name, resolved by Plug'n'Play. */
const APP = `'use strict'
const fs = require('node:fs')
const fastify = require('fastify')
const hotReload = require('fastify-hot-reload')
const { logHotReloadEvents } = require('./log-events.js')
const release = JSON.parse(fs.readFileSync('release.json', 'utf8'))
async function main () {
  const app = fastify({ logger: true })
  await app.register(hotReload, release.plugin)
  logHotReloadEvents(app)
  app.get('/', async () => ({ version: release.version, pid: process.pid }))
  app.get('/plugin', async () => ({ path: require.resolve('fastify-hot-reload') }))
  await app.listen({ port: 0, host: '127.0.0.1' })
}
main().catch((err) => { console.error(err); process.exit(1) })
`

/** A new project with the packed package and fastify installed by Yarn 4 with Plug'n'Play. */
async function pnpProject (t, dir) {
  const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: REPO })
  t.equal(pack.code, 0, 'npm pack', { stderr: pack.stderr })
  const tarball = path.join(dir, JSON.parse(pack.stdout)[0].filename)
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name: 'pnp-app',
    private: true,
    dependencies: { 'fastify-hot-reload': `file:${tarball}`, fastify: versionOf('fastify') }
  }))
  // A CI environment makes Yarn refuse to write a lockfile unless told to.
  fs.writeFileSync(path.join(dir, '.yarnrc.yml'), 'nodeLinker: pnp\nenableTelemetry: false\nenableImmutableInstalls: false\n')
  fs.writeFileSync(path.join(dir, 'app.js'), APP)
  fs.copyFileSync(path.join(REPO, 'test/fixtures/log-events.js'), path.join(dir, 'log-events.js'))
  const install = await run(process.execPath, [YARN, 'install'], { cwd: dir, env: { ...process.env, YARN_ENABLE_PROGRESS_BARS: 'false' } })
  t.equal(install.code, 0, 'yarn install', { output: install.stdout.slice(-2000) + install.stderr })
  t.ok(fs.existsSync(path.join(dir, '.pnp.cjs')) && !fs.existsSync(path.join(dir, 'node_modules')), 'Plug\'n\'Play: .pnp.cjs, no node_modules')
}

// One project for the whole file (packing and installing take seconds), removed at its end.
const projectDir = tempDir(tap, 'fhr-pnp-')
test('the project: the packed package installed by Yarn 4 (nodeLinker: pnp)', (t) => pnpProject(t, projectDir))

/**
 * Two reloads by SIGUSR2 under keep-alive load, 0 failed, then SIGTERM: nothing left. `keptPid`:
 * the service's pid (the supervisor), signalled; without it, each generation's own pid is.
 */
async function reloadsAndStops (t, service, dir, keptPid) {
  const url = await service.listening()
  let serving = await service.generationServing(1)
  const plugin = await (await fetch(new URL('/plugin', url))).json()
  t.match(plugin.path, /\.zip[\\/]node_modules[\\/]fastify-hot-reload[\\/]/, 'the app runs the plugin from Yarn\'s zip')
  const load = startLoad(t, { host: url.hostname, port: Number(url.port) }, { connections: 10, keepAlive: true })
  await sleep(300)
  for (let version = 2; version <= 3; version++) {
    writeRelease(dir, { version, plugin: PLUGIN })
    process.kill(keptPid ?? serving, 'SIGUSR2')
    serving = await service.generationServing(version)
    await sleep(300)
  }
  const stats = await load.stop()
  t.equal(stats.failed, 0, 'no request failed')
  t.ok(stats.versions[3] > 0, 'the newest release serves')
  const last = keptPid ?? serving
  const everything = [last, ...descendantsOf(last)]
  process.kill(last, 'SIGTERM')
  if (keptPid !== undefined) t.same(await service.exit, { code: 0, signal: null }, 'what was started exits 0')
  for (const pid of everything) await waitUntilGone(pid, 15000)
  t.pass('nothing is left')
}

const KEEP = { FASTIFY_HOT_RELOAD_KEEP_PID: '1' }
const tookPid = (service, pid = service.pid) => service.find((l) => l.supervisor === 'started' && l.pid === pid) !== undefined
const notKept = (service) => service.find((l) => l.hotReload === 'pid-not-kept')

test(`node -r ./.pnp.cjs app.js (Yarn 4 Plug'n'Play), Node ${process.version}: the service serves from the zips and reloads under load, 0 failed; SIGTERM ends it all`, async (t) => {
  const dir = projectDir
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const service = Service.start(t, { cwd: dir, command: process.execPath, args: ['-r', './.pnp.cjs', 'app.js'], env: KEEP })
  await service.generationServing(1)
  // Node 20 has no execve: standalone reloads there.
  t.equal(tookPid(service), canExecve, canExecve ? 'the started pid became the supervisor (its script read from the zip)' : 'standalone')
  await reloadsAndStops(t, service, dir, canExecve ? service.pid : undefined)
})

test(`yarn node app.js (Yarn's runtime in NODE_OPTIONS), Node ${process.version}: the same, signalling the node yarn started`, async (t) => {
  const dir = projectDir
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const service = Service.start(t, { cwd: dir, command: process.execPath, args: [YARN, 'node', 'app.js'], env: KEEP })
  await service.generationServing(1)
  // yarn dies of SIGUSR2 (README): the node it started is the one to signal.
  const [node] = childrenOf(service.pid)
  t.equal(tookPid(service, node.pid), canExecve, canExecve ? 'the node yarn started became the supervisor' : 'standalone')
  await reloadsAndStops(t, service, dir, canExecve ? node.pid : undefined)
})

test('an app that sets Yarn\'s runtime up itself (require(\'./.pnp.cjs\').setup()), keepPid asked: the pid is not kept, with a warning, and reloads work standalone', async (t) => {
  const dir = projectDir
  fs.writeFileSync(path.join(dir, 'setup-app.js'), `require('./.pnp.cjs').setup()\n${fs.readFileSync(path.join(dir, 'app.js'), 'utf8').replace("'use strict'\n", '')}`)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const service = Service.start(t, { cwd: dir, command: process.execPath, args: ['setup-app.js'], env: KEEP })
  await service.generationServing(1)
  t.notOk(tookPid(service), 'no supervisor: its image could not read its own script')
  t.ok(notKept(service), 'a warning says the pid is not kept')
  await reloadsAndStops(t, service, dir)
})

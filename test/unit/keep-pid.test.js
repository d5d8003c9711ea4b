'use strict'
// When a process keeps its pid by becoming the supervisor, and the supervisor's command line.
const { test } = require('tap')
const { decideKeepPid, supervisorArgv, pm2WaitsForReady, KEEP_PID_ENV } = require('../../dist/lib/keep-pid')
const { resolveOptions } = require('../../dist/lib/options')

const facts = (over = {}) => ({
  option: undefined,
  env: {},
  handedOff: false,
  activated: false,
  canExecve: true,
  mainThread: true,
  nodeVersion: 'v26.12.1',
  options: resolveOptions({}),
  ...over
})

test('decideKeepPid: kept by default for a first process on a Node with execve', async (t) => {
  t.same(decideKeepPid(facts()), { keep: true })
  t.same(decideKeepPid(facts({ option: true })), { keep: true })
})

test('decideKeepPid: not kept, silently, where it does not apply or was turned off', async (t) => {
  const quiet = (over) => {
    const decision = decideKeepPid(facts(over))
    return [decision.keep, decision.warn]
  }
  t.same(quiet({ handedOff: true }), [false, false], 'a successor or a worker of the supervisor')
  t.same(quiet({ clusterWorker: true }), [false, false], 'a node:cluster worker (PM2 cluster mode): its start says it does not reload')
  t.same(quiet({ clusterWorker: true, env: { [KEEP_PID_ENV]: '1' } }), [false, true], 'a node:cluster worker asked to keep its pid: not kept, and said so')
  t.same(quiet({ option: false }), [false, false], 'keepPid: false')
  t.same(quiet({ env: { [KEEP_PID_ENV]: '0' } }), [false, false], `${KEEP_PID_ENV}=0`)
  t.same(quiet({ option: true, env: { [KEEP_PID_ENV]: '0' } }), [false, false], 'the variable wins over the option')
  t.same(quiet({ option: false, env: { [KEEP_PID_ENV]: '1' } }), [true, undefined], 'either way: =1 keeps it despite keepPid: false')
  for (const runner of ['NODE_TEST_CONTEXT', 'JEST_WORKER_ID', 'VITEST', 'TAP']) {
    t.same(quiet({ env: { [runner]: '1' } }), [false, false], `a test runner (${runner})`)
  }
  t.same(quiet({ env: { TAP: '1', [KEEP_PID_ENV]: '1' } }), [true, undefined], 'asked for: kept even under a test runner')
  t.same(quiet({ script: '/srv/app/node_modules/fastify-cli/lib/watch/fork.js' }), [false, false], 'fastify-cli\'s watch mode (fastify start -w)')
  t.same(quiet({ script: '/srv/app/node_modules/fastify-cli/cli.js' }), [true, undefined], 'fastify start without -w: kept')
  t.same(quiet({ option: true, env: { JEST_WORKER_ID: '1' } }), [true, undefined], 'keepPid: true: kept even under a test runner')
})

test('decideKeepPid: not kept, with a warning, where it was meant to be and cannot be', async (t) => {
  const warned = (over) => {
    const decision = decideKeepPid(facts(over))
    t.equal(decision.keep, false)
    t.equal(decision.warn, true)
    return decision.reason
  }
  t.match(warned({ canExecve: false, nodeVersion: 'v20.20.2' }), /v20\.20\.2.*execve.*22\.15/, 'no process.execve: says which Node has it')
  t.match(warned({ activated: true }), /socket activation.*fastify-hot-reload start/, 'systemd socket activation: its fds are close-on-exec in Node; says what to do instead')
  t.match(warned({ options: resolveOptions({ successor: { args: ['other.js'] } }) }), /successor.*args/, 'a custom successor')
  t.match(warned({ supervisorLoadable: false }), /Yarn.*\.pnp\.cjs/, 'the supervisor\'s script in a zip nothing would read: says how to start')
  t.match(warned({ supervisorLoadable: false, env: { [KEEP_PID_ENV]: '1' } }), /Yarn/, 'not even when forced: the image would die at start')
  t.equal(decideKeepPid(facts({ mainThread: false })).warn, false, 'a worker thread, by default: quiet')
  t.equal(decideKeepPid(facts({ mainThread: false, option: true })).warn, true, 'a worker thread, asked for: warned')
})

test('supervisorArgv: the plugin\'s timings and signals as flags, then the app exactly as started', async (t) => {
  const launch = { execPath: '/usr/bin/node', execArgv: ['--env-file=.env'], args: ['/srv/app.js', '--port', '3000'], cwd: '/srv', env: {} }
  const options = resolveOptions({ readyTimeout: 5000, drainTimeout: 7000, probation: 0, bootNice: 7, maxDrainingGenerations: 2, reloadSignals: ['SIGUSR2', 'SIGHUP'] })
  t.same(supervisorArgv(launch, options, '/pkg/bin/fastify-hot-reload.js'), [
    '/usr/bin/node', '/pkg/bin/fastify-hot-reload.js', 'start', '--from-plugin', '--name', 'app',
    '--ready-timeout', '5000', '--drain-timeout', '7000', '--probation', '0', '--boot-nice', '7', '--max-draining', '2',
    '--reload-signal', 'SIGUSR2', '--reload-signal', 'SIGHUP',
    '--', '/usr/bin/node', '--env-file=.env', '/srv/app.js', '--port', '3000'
  ])
  const none = supervisorArgv(launch, resolveOptions({ reloadSignals: [] }), '/b.js')
  t.same(none.slice(none.indexOf('--reload-signal'), none.indexOf('--reload-signal') + 2), ['--reload-signal', 'none'], 'no reload signal: "none", not the supervisor\'s default')
  const withPidFile = supervisorArgv(launch, resolveOptions({ pidFile: '/tmp/x.pid' }), '/b.js')
  t.ok(withPidFile.join(' ').includes('--pid-file /tmp/x.pid --'), 'the pid file goes to the supervisor, which keeps the pid')
})

test('keepPid must be true or false', async (t) => {
  t.throws(() => resolveOptions({ keepPid: 'yes' }), { code: 'HOT_RELOAD_INVALID_OPTION', message: /"keepPid" must be true or false/ })
  t.equal(resolveOptions({}).keepPid, undefined, 'not given: the default')
})

test('FASTIFY_HOT_RELOAD_KEEP_PID other than 1 or 0: a clear error naming it', async (t) => {
  for (const value of ['true', 'yes', '', '2']) {
    t.throws(() => decideKeepPid(facts({ env: { [KEEP_PID_ENV]: value } })), { code: 'HOT_RELOAD_INVALID_OPTION', message: new RegExp(`${KEEP_PID_ENV} must be 1 .* or 0 .*, got ${JSON.stringify(JSON.stringify(value)).slice(1, -1)}`) }, JSON.stringify(value))
  }
})

test('the supervisor\'s image: tsx\'s preflight kept (its signal acknowledgement), no other preload, no IPC channel variables', async (t) => {
  const { runnerPreloads, supervisorEnvironment } = require('../../dist/lib/supervisor-image')
  const preflight = '/app/node_modules/tsx/dist/preflight.cjs'
  t.same(runnerPreloads(['--require', preflight, '--import', 'file:///app/node_modules/tsx/dist/loader.mjs']), ['--require', preflight])
  t.same(runnerPreloads([`--require=${preflight}`, '-r', 'newrelic', '--inspect']), ['--require', preflight])
  t.same(runnerPreloads(['-r', 'dotenv/config', '--env-file=.env']), [], 'nothing else')
  const launch = { execPath: '/usr/bin/node', execArgv: ['--require', preflight, '--import', 'file:///l.mjs'], args: ['/srv/app.ts'], cwd: '/srv', env: {} }
  const argv = supervisorArgv(launch, resolveOptions({}), '/pkg/bin/fastify-hot-reload.js')
  t.same(argv.slice(0, 5), ['/usr/bin/node', '--require', preflight, '/pkg/bin/fastify-hot-reload.js', 'start'], 'the supervisor runs the preflight')
  t.same(argv.slice(argv.indexOf('--') + 1), ['/usr/bin/node', '--require', preflight, '--import', 'file:///l.mjs', '/srv/app.ts'], 'the app as started')
  t.same(supervisorEnvironment({ PATH: '/bin', NODE_CHANNEL_FD: '3', NODE_CHANNEL_SERIALIZATION_MODE: 'json', X: '1' }), { PATH: '/bin', X: '1' })
})

test('the supervisor\'s image: NODE_OPTIONS without the app\'s preloads (the workers get them back), the runners\' kept', async (t) => {
  const { supervisorEnvironment, restoreWorkerNodeOptions, withoutAppPreloads, WORKER_NODE_OPTIONS } = require('../../dist/lib/supervisor-image')
  t.equal(withoutAppPreloads('--max-old-space-size=512 --enable-source-maps'), '--max-old-space-size=512 --enable-source-maps', 'no preload: unchanged')
  t.equal(withoutAppPreloads('-r dd-trace/init --enable-source-maps'), '--enable-source-maps')
  t.equal(withoutAppPreloads('--import=@opentelemetry/auto-instrumentations-node/register --require ./apm.js'), '', '--import= and --require')
  t.equal(withoutAppPreloads('--loader ./l.mjs --experimental-loader=./m.mjs --inspect'), '--inspect', 'loaders too')
  t.equal(withoutAppPreloads('--require "/my app/apm.js" --max-old-space-size=64'), '--max-old-space-size=64', 'a quoted path with a space')
  t.equal(withoutAppPreloads('--require "/my app/.pnp.cjs"'), '--require "/my app/.pnp.cjs"', 'Yarn\'s runtime kept, quoted as given')
  t.equal(withoutAppPreloads('--require /p/.pnp.cjs --experimental-loader /p/.pnp.loader.mjs -r x'), '--require /p/.pnp.cjs --experimental-loader /p/.pnp.loader.mjs', 'yarn node: Yarn\'s runtime and loader kept')
  t.equal(withoutAppPreloads('-r /app/node_modules/tsx/dist/preflight.cjs -r x'), '-r /app/node_modules/tsx/dist/preflight.cjs', 'tsx\'s preflight kept')
  const env = supervisorEnvironment({ PATH: '/bin', NODE_OPTIONS: '-r ./apm.js --max-old-space-size=64' })
  t.same(env, { PATH: '/bin', NODE_OPTIONS: '--max-old-space-size=64', [WORKER_NODE_OPTIONS]: '-r ./apm.js --max-old-space-size=64' })
  const only = supervisorEnvironment({ NODE_OPTIONS: '--import ./otel.mjs' })
  t.notOk('NODE_OPTIONS' in only, 'nothing left: no NODE_OPTIONS')
  t.same(supervisorEnvironment({ NODE_OPTIONS: '--inspect' }), { NODE_OPTIONS: '--inspect' }, 'no preload: nothing set aside')
  const workers = { ...env }
  restoreWorkerNodeOptions(workers)
  t.same(workers, { PATH: '/bin', NODE_OPTIONS: '-r ./apm.js --max-old-space-size=64' }, 'the workers get the app\'s NODE_OPTIONS back')
})

test('the supervisor\'s image under Yarn Plug\'n\'Play: Yarn\'s runtime kept, and where there is none for a script in a zip, it cannot load', async (t) => {
  const { runnerPreloads, canLoadSupervisor } = require('../../dist/lib/supervisor-image')
  t.same(runnerPreloads(['-r', './.pnp.cjs', '--loader', './.pnp.loader.mjs']), ['--require', './.pnp.cjs'], 'node -r ./.pnp.cjs')
  t.same(runnerPreloads(['--require=/srv/.pnp.js']), ['--require', '/srv/.pnp.js'], 'Yarn 2\'s name, inline')
  t.same(runnerPreloads(['-r', './not.pnp.cjs']), [], 'only that file')
  const zipped = '/srv/.yarn/__virtual__/fastify-hot-reload-virtual-1/0/cache/fastify-hot-reload-file-2.zip/node_modules/fastify-hot-reload/bin/fastify-hot-reload.js'
  t.equal(canLoadSupervisor('/srv/node_modules/fastify-hot-reload/bin/fastify-hot-reload.js', [], {}), true, 'on disk: always')
  t.equal(canLoadSupervisor(zipped, ['-r', './.pnp.cjs'], {}), true, 'in a zip, Yarn\'s runtime on the command line')
  t.equal(canLoadSupervisor(zipped, [], { NODE_OPTIONS: '--require /srv/.pnp.cjs --experimental-loader /srv/.pnp.loader.mjs' }), true, 'in NODE_OPTIONS (yarn node)')
  t.equal(canLoadSupervisor(zipped, ['-r', 'dotenv/config'], { NODE_OPTIONS: '--max-old-space-size=512' }), false, 'set up by the app\'s own code: nothing for the image')
})

test('pm2WaitsForReady: PM2 with wait_ready, as its environment says', async (t) => {
  t.equal(pm2WaitsForReady({ pm_id: '0', wait_ready: 'true' }), true)
  t.equal(pm2WaitsForReady({ pm_id: '0', wait_ready: 'false' }), false, 'PM2 without wait_ready')
  t.equal(pm2WaitsForReady({ pm_id: '0' }), false)
  t.equal(pm2WaitsForReady({ wait_ready: 'true' }), false, 'not under PM2')
})

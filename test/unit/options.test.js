'use strict'
// lib/options.ts: resolveOptions fills in the defaults and rejects every malformed option with
// HOT_RELOAD_INVALID_OPTION and a message that names the option.
const { test } = require('tap')
const { resolveOptions, limitDrain, DEFAULTS } = require('../../dist/lib/options')

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

test('defaults', async (t) => {
  for (const input of [undefined, {}]) {
    const options = resolveOptions(input)
    t.same(options.reloadSignals, ['SIGUSR2'], 'reloadSignals')
    t.equal(options.readyTimeout, 30000, 'readyTimeout')
    t.equal(options.drainTimeout, 30000, 'drainTimeout')
    t.equal(options.idleGrace, 1000, 'idleGrace')
    t.equal(options.healthPath, '/health', 'healthPath')
    t.equal(options.livenessPath, '/health/live', 'livenessPath')
    t.equal(options.underPressure, false, 'underPressure: not registered unless given')
    t.equal(options.gracefulShutdown, true, 'gracefulShutdown')
    t.same(options.successor, {}, 'successor')
    t.equal(options.pidFile, undefined, 'pidFile')
    t.equal(options.connectionHandoff, true, 'connectionHandoff')
    t.equal(options.probation, 2000, 'probation')
    t.equal(options.bootNice, 10, 'bootNice')
    t.equal(options.maxDrainingGenerations, 5, 'maxDrainingGenerations')
    t.equal(options.closeSpread, 15000, 'closeSpread: half of drainTimeout')
  }
  t.same(DEFAULTS.reloadSignals, ['SIGUSR2'])
})

test('the default reloadSignals array is a copy: changing it does not change the defaults', async (t) => {
  resolveOptions().reloadSignals.push('SIGHUP')
  t.same(resolveOptions().reloadSignals, ['SIGUSR2'])
  t.same(DEFAULTS.reloadSignals, ['SIGUSR2'])
})

test('valid values are kept', async (t) => {
  const options = resolveOptions({
    reloadSignals: ['SIGHUP'],
    readyTimeout: 1,
    drainTimeout: 2 ** 31 - 1,
    idleGrace: 250,
    healthPath: '/ready',
    livenessPath: '/alive',
    underPressure: { maxEventLoopDelay: 1000 },
    gracefulShutdown: false,
    connectionHandoff: false,
    probation: 0,
    maxDrainingGenerations: 1,
    successor: { execPath: process.execPath, execArgv: ['--max-old-space-size=256'], args: ['app.js', '--port', '3000'], env: { A: 'b', B: undefined }, cwd: '/tmp' }
  })
  t.same(options.reloadSignals, ['SIGHUP'])
  t.equal(options.readyTimeout, 1)
  t.equal(options.drainTimeout, 2147483647)
  t.equal(options.idleGrace, 250)
  t.equal(options.healthPath, '/ready')
  t.equal(options.livenessPath, '/alive')
  t.same(options.underPressure, { maxEventLoopDelay: 1000 })
  t.equal(options.gracefulShutdown, false)
  t.equal(options.connectionHandoff, false)
  t.equal(options.probation, 0, 'probation 0 turns it off')
  t.equal(options.maxDrainingGenerations, 1)
  t.same(options.successor, { execPath: process.execPath, execArgv: ['--max-old-space-size=256'], args: ['app.js', '--port', '3000'], env: { A: 'b', B: undefined }, cwd: '/tmp' })
})

test('successor: a bare command name is left to PATH, a relative directory is taken from the working directory', async (t) => {
  t.same(resolveOptions({ successor: { execPath: 'node', cwd: '.' } }).successor.execPath, 'node')
  t.equal(resolveOptions({ successor: { cwd: '.' } }).successor.cwd, '.', 'kept as given: the spawn resolves it')
})

test('closeSpread: half of drainTimeout by default, from 0 to less than drainTimeout', async (t) => {
  t.equal(resolveOptions({ drainTimeout: 5000 }).closeSpread, 2500, 'follows drainTimeout')
  t.equal(resolveOptions({ drainTimeout: 1 }).closeSpread, 0, 'a drainTimeout of 1 ms leaves no window')
  t.equal(resolveOptions({ closeSpread: 0 }).closeSpread, 0, '0: all at once')
  t.equal(resolveOptions({ closeSpread: 29999 }).closeSpread, 29999, 'up to drainTimeout - 1')
  t.equal(resolveOptions({ drainTimeout: 60000, closeSpread: 45000 }).closeSpread, 45000)
})

test('reload signals are deduplicated, in order', async (t) => {
  t.same(resolveOptions({ reloadSignals: ['SIGUSR2', 'SIGHUP'] }).reloadSignals, ['SIGUSR2', 'SIGHUP'])
  t.same(resolveOptions({ reloadSignals: ['SIGUSR2', 'SIGHUP', 'SIGUSR2', 'SIGHUP'] }).reloadSignals, ['SIGUSR2', 'SIGHUP'])
  t.same(resolveOptions({ reloadSignals: [] }).reloadSignals, [], 'no signal: reload() only')
})

test('healthPath and livenessPath can be false', async (t) => {
  const noHealth = resolveOptions({ healthPath: false })
  t.equal(noHealth.healthPath, false)
  t.equal(noHealth.livenessPath, '/health/live')
  t.equal(resolveOptions({ livenessPath: false }).livenessPath, false)
  const neither = resolveOptions({ healthPath: false, livenessPath: false })
  t.equal(neither.healthPath, false, 'both false is not "the same path"')
  t.equal(neither.livenessPath, false)
})

test('underPressure false skips it; an options object, even empty, registers it', async (t) => {
  t.equal(resolveOptions({ underPressure: false }).underPressure, false)
  t.same(resolveOptions({ underPressure: {} }).underPressure, {})
})

test('the underPressure options are a copy: @fastify/under-pressure writes into the object it gets, not into the app\'s', async (t) => {
  const given = { maxEventLoopDelay: 1000, exposeStatusRoute: true, healthCheck: async () => true, healthCheckInterval: 500 }
  const resolved = resolveOptions({ underPressure: given }).underPressure
  t.same(resolved, given)
  t.not(resolved, given, 'not the same object')
})

test("Fastify's own register keys are accepted", async (t) => {
  const options = resolveOptions({ prefix: '/api', logLevel: 'warn', logSerializers: {}, readyTimeout: 5000 })
  t.equal(options.readyTimeout, 5000)
  t.notOk('prefix' in options, 'they are not plugin options')
  t.notOk('logLevel' in options)
})

// [input, the option the message names, what else the message says]
const invalid = [
  // timeouts
  [{ readyTimeout: 0 }, 'readyTimeout', /whole number of milliseconds from 1 to 2147483647.*got number 0/],
  [{ readyTimeout: -1 }, 'readyTimeout', /got number -1/],
  [{ readyTimeout: 1.5 }, 'readyTimeout', /got number 1\.5/],
  [{ readyTimeout: 2 ** 31 }, 'readyTimeout', /got number 2147483648/],
  [{ readyTimeout: Infinity }, 'readyTimeout', /got number Infinity/],
  [{ readyTimeout: NaN }, 'readyTimeout', /got number NaN/],
  [{ readyTimeout: '1000' }, 'readyTimeout', /got string "1000"/],
  [{ drainTimeout: 0 }, 'drainTimeout', /whole number/],
  [{ drainTimeout: -5000 }, 'drainTimeout', /got number -5000/],
  [{ drainTimeout: 0.1 }, 'drainTimeout', /whole number/],
  [{ drainTimeout: 1e12 }, 'drainTimeout', /2147483647/],
  [{ drainTimeout: '5s' }, 'drainTimeout', /got string "5s"/],
  [{ idleGrace: 0 }, 'idleGrace', /whole number/],
  [{ idleGrace: -1 }, 'idleGrace', /whole number/],
  [{ idleGrace: 99.9 }, 'idleGrace', /whole number/],
  [{ idleGrace: 2 ** 40 }, 'idleGrace', /whole number/],
  [{ idleGrace: '200' }, 'idleGrace', /got string "200"/],
  [{ idleGrace: null }, 'idleGrace', /got null/],
  // unknown options
  [{ reloadTimeout: 5 }, 'reloadTimeout', /unknown option/],
  [{ readytimeout: 5 }, 'readytimeout', /one of reloadSignals, readyTimeout/],
  // signals
  [{ reloadSignals: 'SIGUSR2' }, 'reloadSignals', /an array of signal names.*got string "SIGUSR2"/],
  [{ reloadSignals: { SIGUSR2: true } }, 'reloadSignals', /an array of signal names/],
  [{ reloadSignals: ['SIGFOO'] }, 'reloadSignals', /known to this system.*got string "SIGFOO"/],
  [{ reloadSignals: ['SIGUSR2', 'SIGFOO'] }, 'reloadSignals', /"SIGFOO"/],
  [{ reloadSignals: ['sigusr2'] }, 'reloadSignals', /known to this system/],
  [{ reloadSignals: ['toString'] }, 'reloadSignals', /known to this system/],
  [{ reloadSignals: [12] }, 'reloadSignals', /got number 12/],
  [{ reloadSignals: ['SIGKILL'] }, 'reloadSignals', /catchable signals.*"SIGKILL"/],
  [{ reloadSignals: ['SIGSTOP'] }, 'reloadSignals', /catchable signals.*"SIGSTOP"/],
  [{ reloadSignals: ['SIGTERM'] }, 'reloadSignals', /other than SIGTERM and SIGINT.*"SIGTERM"/],
  [{ reloadSignals: ['SIGHUP', 'SIGINT'] }, 'reloadSignals', /other than SIGTERM and SIGINT.*"SIGINT"/],
  // Signals that come without anyone asking for a reload (a child process that ends, a closed pipe, a crash).
  [{ reloadSignals: ['SIGCHLD'] }, 'reloadSignals', /signals from SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM, SIGPWR, got string "SIGCHLD"/],
  [{ reloadSignals: ['SIGUSR2', 'SIGPIPE'] }, 'reloadSignals', /signals from .*"SIGPIPE"/],
  [{ reloadSignals: ['SIGSEGV'] }, 'reloadSignals', /signals from .*"SIGSEGV"/],
  [{ reloadSignals: ['SIGQUIT'] }, 'reloadSignals', /signals from .*"SIGQUIT"/],
  // routes
  [{ healthPath: 'health' }, 'healthPath', /a path starting with "\/" or false, got string "health"/],
  [{ healthPath: '' }, 'healthPath', /starting with "\/"/],
  [{ healthPath: true }, 'healthPath', /got boolean true/],
  [{ healthPath: 1 }, 'healthPath', /got number 1/],
  [{ livenessPath: 'live' }, 'livenessPath', /starting with "\/"/],
  [{ livenessPath: 3 }, 'livenessPath', /starting with "\/"/],
  [{ healthPath: '/h', livenessPath: '/h' }, 'livenessPath', /a path other than healthPath \(\/h\)/],
  [{ healthPath: '/health/live' }, 'livenessPath', /other than healthPath/],
  [{ livenessPath: '/health' }, 'livenessPath', /other than healthPath/],
  // underPressure, gracefulShutdown, connectionHandoff
  [{ underPressure: true }, 'underPressure', /options object for @fastify\/under-pressure or false/],
  [{ underPressure: null }, 'underPressure', /got null/],
  [{ underPressure: 'on' }, 'underPressure', /got string "on"/],
  [{ underPressure: [] }, 'underPressure', /got array/],
  // under-pressure reads a threshold it cannot use as none: the app would never report pressure.
  [{ underPressure: { maxEventLoopDelay: 'abc' } }, 'underPressure.maxEventLoopDelay', /milliseconds, 0 or more, got string "abc"/],
  [{ underPressure: { maxHeapUsedBytes: -1 } }, 'underPressure.maxHeapUsedBytes', /bytes, 0 or more/],
  [{ underPressure: { maxEventLoopUtilization: 1.5 } }, 'underPressure.maxEventLoopUtilization', /a fraction from 0 to 1/],
  [{ underPressure: { healthCheck: true } }, 'underPressure.healthCheck', /a function/],
  [{ underPressure: { maxEventloopDelay: 200 } }, 'underPressure.maxEventloopDelay', /one of maxEventLoopDelay, .* \(unknown option\)/],
  [{ underPressure: { bogus: 1 } }, 'underPressure.bogus', /unknown option/],
  [{ underPressure: { eventLoopUtilizationMode: 'average' } }, 'underPressure.eventLoopUtilizationMode', /"cumulative" or "interval", got string "average"/],
  // under-pressure runs a health check without an interval only for its own status route
  [{ underPressure: { healthCheck: async () => true } }, 'underPressure.healthCheckInterval', /milliseconds above 0 with underPressure.healthCheck.*got undefined/],
  [{ underPressure: { healthCheck: async () => true, healthCheckInterval: 0, exposeStatusRoute: true } }, 'underPressure.healthCheckInterval', /got number 0/],
  // its status route at a probe's path: named, not "the app has a route GET /health"
  [{ underPressure: { exposeStatusRoute: '/health' } }, 'underPressure.exposeStatusRoute', /a path other than healthPath \(\/health\)/],
  [{ underPressure: { exposeStatusRoute: { routeOpts: {}, url: '/health/live' } } }, 'underPressure.exposeStatusRoute', /a path other than livenessPath/],
  [{ healthPath: '/status', underPressure: { exposeStatusRoute: true } }, 'underPressure.exposeStatusRoute', /a path other than healthPath \(\/status\)/],
  [{ gracefulShutdown: 'yes' }, 'gracefulShutdown', /true or false, got string "yes"/],
  [{ gracefulShutdown: 1 }, 'gracefulShutdown', /true or false/],
  [{ gracefulShutdown: null }, 'gracefulShutdown', /true or false/],
  [{ connectionHandoff: 'true' }, 'connectionHandoff', /true or false/],
  // probation, maxDrainingGenerations
  [{ probation: -1 }, 'probation', /a whole number of milliseconds from 0 to 2147483647, got number -1/],
  [{ probation: 1.5 }, 'probation', /whole number of milliseconds/],
  [{ probation: '2s' }, 'probation', /got string "2s"/],
  [{ maxDrainingGenerations: 0 }, 'maxDrainingGenerations', /a whole number of generations from 1 to 1000, got number 0/],
  [{ maxDrainingGenerations: 1001 }, 'maxDrainingGenerations', /from 1 to 1000/],
  [{ maxDrainingGenerations: '3' }, 'maxDrainingGenerations', /got string "3"/],
  // bootNice
  [{ bootNice: 20 }, 'bootNice', /a whole number of niceness steps from 0 to 19, got number 20/],
  [{ bootNice: -5 }, 'bootNice', /from 0 to 19, got number -5/],
  [{ bootNice: '10' }, 'bootNice', /got string "10"/],
  // closeSpread
  [{ closeSpread: -1 }, 'closeSpread', /a whole number of milliseconds from 0 to 29999 \(less than drainTimeout, 30000\), got number -1/],
  [{ closeSpread: 30000 }, 'closeSpread', /less than drainTimeout, 30000\), got number 30000/],
  [{ drainTimeout: 2000, closeSpread: 5000 }, 'closeSpread', /from 0 to 1999 \(less than drainTimeout, 2000\), got number 5000/],
  [{ closeSpread: 1.5 }, 'closeSpread', /whole number/],
  [{ closeSpread: '5s' }, 'closeSpread', /got string "5s"/],
  [{ closeSpread: null }, 'closeSpread', /got null/],
  // successor
  [{ successor: [] }, 'successor', /an object/],
  [{ successor: 'node app.js' }, 'successor', /an object/],
  [{ successor: null }, 'successor', /an object/],
  [{ successor: { exec: 'x' } }, 'successor.exec', /unknown key/],
  [{ successor: { args: ['a.js'], argv: ['b'] } }, 'successor.argv', /unknown key/],
  [{ successor: { env: { A: 1 } } }, 'successor.env.A', /a string or undefined, got number 1/],
  [{ successor: { env: { A: 'ok', B: null } } }, 'successor.env.B', /a string or undefined, got null/],
  [{ successor: { env: { A: true } } }, 'successor.env.A', /a string or undefined/],
  [{ successor: { env: 'A=b' } }, 'successor.env', /an object of strings/],
  [{ successor: { env: ['A=b'] } }, 'successor.env', /an object of strings/],
  [{ successor: { args: [] } }, 'successor.args', /non-empty array \(the script first\)/],
  [{ successor: { args: 'app.js' } }, 'successor.args', /an array of strings/],
  [{ successor: { args: ['app.js', 3000] } }, 'successor.args', /an array of strings/],
  [{ successor: { execArgv: [1] } }, 'successor.execArgv', /an array of strings/],
  [{ successor: { execArgv: '--inspect' } }, 'successor.execArgv', /an array of strings/],
  [{ successor: { execArgv: ['--inspect', null] } }, 'successor.execArgv', /an array of strings/],
  [{ successor: { execPath: '' } }, 'successor.execPath', /non-empty string/],
  [{ successor: { cwd: '' } }, 'successor.cwd', /non-empty string/],
  [{ successor: { cwd: 1 } }, 'successor.cwd', /non-empty string/],
  // checked on disk at registration, not at the first reload
  [{ successor: { cwd: '/nonexistent-dir-fhr' } }, 'successor.cwd', /an existing directory \(\/nonexistent-dir-fhr: missing: ENOENT\)/],
  [{ successor: { cwd: '/etc/passwd' } }, 'successor.cwd', /an existing directory \(\/etc\/passwd: not a directory\)/],
  [{ successor: { execPath: '/nonexistent/node' } }, 'successor.execPath', /an executable file \(\/nonexistent\/node: missing: ENOENT\)/],
  [{ successor: { execPath: '/etc' } }, 'successor.execPath', /an executable file \(\/etc: not a file\)/],
  [{ successor: { execPath: '/etc/passwd' } }, 'successor.execPath', /an executable file \(\/etc\/passwd: not executable\)/],
  // pidFile
  [{ pidFile: 5 }, 'pidFile', /a file path/],
  [{ pidFile: '' }, 'pidFile', /a file path/],
  [{ pidFile: '/nonexistent-dir-fhr/app.pid' }, 'pidFile', /directory we can write/],
  // Root passes every permission check, yet cannot create a file under a regular file or in /proc.
  [{ pidFile: '/etc/passwd/app.pid' }, 'pidFile', /directory we can write \(\/etc\/passwd is not a directory\)/],
  [{ pidFile: '/proc/fhr-app.pid' }, 'pidFile', /directory we can write \(directory \/proc is not writable \(E[A-Z]+\)\)/],
  // the options object itself
  ['fast', 'options', /an object/],
  [null, 'options', /an object, got null/],
  [[], 'options', /an object/]
]

for (const [input, name, message] of invalid) {
  test(`invalid ${name}: ${JSON.stringify(input, (k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))}`, async (t) => {
    let error
    try {
      resolveOptions(input)
    } catch (err) {
      error = err
    }
    t.ok(error instanceof Error, 'throws an Error')
    t.equal(error?.code, 'HOT_RELOAD_INVALID_OPTION')
    t.match(error?.message, new RegExp(`^fastify-hot-reload: option "${escape(name)}" must be `), 'names the option')
    t.match(error?.message, message)
  })
}

test('limitDrain: a supervisor\'s --drain-timeout bounds drainTimeout, and closeSpread with it', async (t) => {
  const defaults = resolveOptions({})
  t.equal(limitDrain(defaults, undefined), defaults, 'no bound (standalone): unchanged')
  t.equal(limitDrain(defaults, 30000), defaults, 'a bound not below: unchanged')
  t.match(limitDrain(defaults, 8000), { drainTimeout: 8000, closeSpread: 4000 }, 'the default closeSpread: half the bound')
  t.match(limitDrain(resolveOptions({ closeSpread: 3000 }), 8000), { drainTimeout: 8000, closeSpread: 3000 }, 'a closeSpread that ends before the bound is kept')
  t.match(limitDrain(resolveOptions({ closeSpread: 20000 }), 8000), { drainTimeout: 8000, closeSpread: 4000 }, 'one that would not: half the bound')
  t.equal(defaults.drainTimeout, 30000, 'the options given are not changed')
})

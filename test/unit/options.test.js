'use strict'
const { test } = require('tap')
const { resolveOptions, DEFAULTS } = require('../../dist/lib/options')

test('defaults', async (t) => {
  const options = resolveOptions(undefined)
  t.same(options.reloadSignals, ['SIGUSR2'])
  t.equal(options.readyTimeout, 30000)
  t.equal(options.drainTimeout, 30000)
  t.equal(options.idleGrace, 1000)
  t.equal(options.healthPath, '/health')
  t.equal(options.livenessPath, '/health/live')
  t.same(options.underPressure, {})
  t.equal(options.gracefulShutdown, true)
  t.same(options.successor, {})
  t.equal(options.pidFile, undefined)
  t.equal(DEFAULTS.idleGrace, 1000)
})

test('valid values are kept, signals deduplicated, Fastify register keys accepted', async (t) => {
  const options = resolveOptions({ reloadSignals: ['SIGUSR2', 'SIGHUP', 'SIGUSR2'], healthPath: false, prefix: '/x', logLevel: 'warn', underPressure: false })
  t.same(options.reloadSignals, ['SIGUSR2', 'SIGHUP'])
  t.equal(options.healthPath, false)
  t.equal(options.underPressure, false)
  t.same(resolveOptions({ reloadSignals: [] }).reloadSignals, [])
})

const invalid = [
  [{ readyTimeout: 0 }, 'readyTimeout', /whole number of milliseconds/],
  [{ readyTimeout: -1 }, 'readyTimeout', /got number -1/],
  [{ readyTimeout: 1.5 }, 'readyTimeout', /whole number/],
  [{ readyTimeout: 2 ** 31 }, 'readyTimeout', /2147483647/],
  [{ drainTimeout: '5s' }, 'drainTimeout', /got string "5s"/],
  [{ idleGrace: null }, 'idleGrace', /got null/],
  [{ reloadSignals: 'SIGUSR2' }, 'reloadSignals', /an array of signal names/],
  [{ reloadSignals: ['SIGFOO'] }, 'reloadSignals', /known to this system.*"SIGFOO"/],
  [{ reloadSignals: ['SIGKILL'] }, 'reloadSignals', /catchable/],
  [{ reloadSignals: ['SIGTERM'] }, 'reloadSignals', /other than SIGTERM and SIGINT/],
  [{ reloadSignals: [15] }, 'reloadSignals', /signal names/],
  [{ healthPath: 'health' }, 'healthPath', /starting with "\/"/],
  [{ livenessPath: 3 }, 'livenessPath', /starting with "\/"/],
  [{ healthPath: '/h', livenessPath: '/h' }, 'livenessPath', /other than healthPath/],
  [{ underPressure: true }, 'underPressure', /options object/],
  [{ gracefulShutdown: 'yes' }, 'gracefulShutdown', /true or false/],
  [{ successor: [] }, 'successor', /an object/],
  [{ successor: { exec: 'x' } }, 'successor.exec', /unknown key/],
  [{ successor: { env: { A: 1 } } }, 'successor.env.A', /a string or undefined/],
  [{ successor: { args: [] } }, 'successor.args', /non-empty array/],
  [{ successor: { execArgv: [1] } }, 'successor.execArgv', /an array of strings/],
  [{ successor: { cwd: '' } }, 'successor.cwd', /non-empty string/],
  [{ pidFile: 5 }, 'pidFile', /a file path/],
  [{ pidFile: '/nonexistent-dir-fhr/app.pid' }, 'pidFile', /directory we can write/],
  [{ reloadTimeout: 5 }, 'reloadTimeout', /unknown option/],
  ['fast', 'options', /an object/]
]

for (const [input, name, message] of invalid) {
  test(`invalid ${name}: ${JSON.stringify(input)}`, async (t) => {
    t.throws(() => resolveOptions(input), { code: 'HOT_RELOAD_INVALID_OPTION', message: new RegExp(`option "${name.replace(/\./g, '\\.')}" must be`) })
    t.throws(() => resolveOptions(input), { message })
  })
}

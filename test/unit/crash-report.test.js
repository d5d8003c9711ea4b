'use strict'
// lib/crash-report.ts: the one line a failed boot's cause is told in, and the preload its parent
// gives a successor (it takes itself out of NODE_OPTIONS, so the app's own children never load it).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { test } = require('tap')
const { crashCause, preloadMissing, withCrashReport, restoreNodeOptions, ORIGINAL_NODE_OPTIONS, ES_MODULE_SYNTAX_WHERE } = require('../../dist/lib/crash-report')

test('crashCause: the first line of the error, a CommonJS syntax error\'s place, anything thrown, and a bound on length', async (t) => {
  t.equal(crashCause(new Error('db down\n    at connect')), 'Error: db down')
  t.equal(crashCause(new RangeError('bad')), 'RangeError: bad')
  t.equal(crashCause('a string'), 'a string')
  t.equal(crashCause(undefined), 'undefined')
  let syntax
  try {
    require('node:vm').runInThisContext('const a = (1;', { filename: '/srv/app/config.js' })
  } catch (err) {
    syntax = err
  }
  t.equal(crashCause(syntax), 'SyntaxError: Unexpected token \';\' (/srv/app/config.js:1)')
  const long = crashCause(new Error('y'.repeat(2000)))
  t.equal(long.length, 500)
  t.ok(long.endsWith('…'))
})

test('crashCause: an ES module\'s syntax error (its place out of reach) says where it was told; a SyntaxError from app code (JSON.parse) does not', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-crash-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const broken = path.join(dir, 'broken.mjs')
  fs.writeFileSync(broken, 'export const a = (1;\n')
  const fromLoader = await import(require('node:url').pathToFileURL(broken).href).catch((err) => err)
  t.ok(fromLoader instanceof SyntaxError, 'Node\'s loader threw a SyntaxError')
  t.equal(crashCause(fromLoader), `SyntaxError: Unexpected token ';'${ES_MODULE_SYNTAX_WHERE}`)
  let fromApp
  try {
    JSON.parse('{ "port": }')
  } catch (err) {
    fromApp = err
  }
  t.notOk(crashCause(fromApp).endsWith(ES_MODULE_SYNTAX_WHERE), `not for app code: ${crashCause(fromApp)}`)
})

test('withCrashReport adds the preload to NODE_OPTIONS, quoted, and keeps what was there to put back', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-crash-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const preload = path.join(dir, 'a "quoted" dir', 'boot-report.js')
  fs.mkdirSync(path.dirname(preload))
  fs.writeFileSync(preload, '')
  const none = withCrashReport({ PATH: '/bin' }, preload, false)
  t.equal(none.NODE_OPTIONS, `--require "${path.join(dir, 'a \\"quoted\\" dir', 'boot-report.js')}"`)
  t.equal(none[ORIGINAL_NODE_OPTIONS], 'null')
  const some = withCrashReport({ NODE_OPTIONS: '--max-old-space-size=512' }, preload, false)
  t.match(some.NODE_OPTIONS, /^--max-old-space-size=512 --require "/)
  t.equal(some[ORIGINAL_NODE_OPTIONS], '"--max-old-space-size=512"')
  t.same(withCrashReport({ A: '1' }, path.join(dir, 'gone.js'), false), { A: '1' }, 'a preload file that is gone (a removed release) is not asked for')
  t.same(withCrashReport({ A: '1' }, preload, true), { A: '1' }, 'nor under Yarn Plug\'n\'Play')
  t.equal(preloadMissing(path.join(dir, 'gone.js'), false), true, 'a gone preload is said to be missing (the failure then says why it names no cause)')
  t.equal(preloadMissing(preload, false), false, 'one that is there is not')
  t.equal(preloadMissing(path.join(dir, 'gone.js'), true), false, 'under Plug\'n\'Play none is asked for: nothing is missing')
  const again = withCrashReport(some, preload, false)
  t.same(again, some, 'an environment that has it already (a generation\'s own, as it was started) gets it once, with the user\'s NODE_OPTIONS saved')
  const env = { ...some }
  restoreNodeOptions(env)
  t.same(env, { NODE_OPTIONS: '--max-old-space-size=512' }, 'the preload puts NODE_OPTIONS back as it was')
  const unset = { ...none }
  restoreNodeOptions(unset)
  t.same(unset, { PATH: '/bin' }, 'and takes it out when there was none')
})

test('the real preload, through Node: loaded by NODE_OPTIONS, gone from the environment the app sees', async (t) => {
  const env = withCrashReport({ PATH: process.env.PATH, NODE_OPTIONS: '--no-warnings' })
  t.ok(env.NODE_OPTIONS.includes('boot-report.js'), 'the built preload exists')
  const seen = JSON.parse(execFileSync(process.execPath, ['-e', 'console.log(JSON.stringify({ options: process.env.NODE_OPTIONS, saved: process.env.FASTIFY_HOT_RELOAD_NODE_OPTIONS ?? null, loaded: Object.keys(require.cache).some((f) => f.endsWith("boot-report.js")) }))'],
    { env, encoding: 'utf8', timeout: 10000 }))
  t.same(seen, { options: '--no-warnings', saved: null, loaded: true })
})

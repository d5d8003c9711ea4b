'use strict'
// test/helpers/untracked-children.js: with coverage off, the processes the tests start do not load
// tap's process tracker (a cost at every start, hundreds of times a run).
const { execFileSync } = require('node:child_process')
const { test } = require('tap')
const { untrackChildren } = require('../helpers/untracked-children')
require('../helpers/processes') // what every test file loads: it untracks this process's children

const TRACKER = '"--import=file:///repo/node_modules/@tapjs/processinfo/dist/esm/import.mjs"'

test('coverage off: the tracker leaves NODE_OPTIONS, other options stay, the spawn hook is emptied', async (t) => {
  const env = { TAP_DISABLE_COVERAGE: '1', NODE_OPTIONS: `--max-old-space-size=512 ${TRACKER} --enable-source-maps` }
  const hooks = { listeners: [() => {}] }
  t.equal(untrackChildren(env, hooks), true)
  t.equal(env.NODE_OPTIONS, '--max-old-space-size=512 --enable-source-maps')
  t.same(hooks.listeners, [])
})

test('coverage on (npm run coverage): nothing changes', async (t) => {
  const env = { TAP_DISABLE_COVERAGE: '0', NODE_OPTIONS: TRACKER }
  const hooks = { listeners: [() => {}] }
  t.equal(untrackChildren(env, hooks), false)
  t.equal(env.NODE_OPTIONS, TRACKER)
  t.equal(hooks.listeners.length, 1)
})

test('a process a test starts does not load the tracker (under npm test)', async (t) => {
  if (process.env.TAP_DISABLE_COVERAGE !== '1') return t.pass('coverage is on: the tracker is wanted')
  const seen = execFileSync(process.execPath, ['-p', 'process.env.NODE_OPTIONS ?? ""'], { env: { ...process.env }, encoding: 'utf8' })
  t.notMatch(seen, /processinfo/)
})

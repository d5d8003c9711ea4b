'use strict'
// --boot-concurrency's default (lib/supervisor/options.ts): half the CPUs, at least one, at most every worker.
const { test } = require('tap')
const { defaultBootConcurrency } = require('../../dist/lib/supervisor/options')

test('defaultBootConcurrency: half the CPUs, at least 1, at most the workers', async (t) => {
  t.equal(defaultBootConcurrency(2, 2), 1, '2 workers on 2 CPUs: one at a time')
  t.equal(defaultBootConcurrency(1, 1), 1, 'one CPU: one at a time')
  t.equal(defaultBootConcurrency(8, 8), 4, '8 on 8: four at a time')
  t.equal(defaultBootConcurrency(8, 9), 4, 'an odd count rounds down')
  t.equal(defaultBootConcurrency(2, 16), 2, 'never more than the workers')
  t.equal(defaultBootConcurrency(1, 16), 1, 'one worker')
})

'use strict'
// Which environment a generation we start gets (lib/compile-cache.ts): NODE_COMPILE_CACHE added only
// where Node reads it (22.1+) and only when the environment neither chose a directory nor turned it off.
const { test } = require('tap')
const { compileCacheSupported, withCompileCache } = require('../../dist/lib/compile-cache')

test('compileCacheSupported: Node 22.1 and later', async (t) => {
  for (const version of ['20.20.2', '21.7.3', '22.0.0']) t.notOk(compileCacheSupported(version), version)
  for (const version of ['22.1.0', '22.23.5', '24.22.3', '26.12.1', '30.0.0']) t.ok(compileCacheSupported(version), version)
})

test('withCompileCache: the default directory is added to a copy; a chosen one or NODE_DISABLE_COMPILE_CACHE is left alone', async (t) => {
  const env = { PATH: '/usr/bin' }
  const added = withCompileCache(env, '26.12.1', '/cache')
  t.same(added, { PATH: '/usr/bin', NODE_COMPILE_CACHE: '/cache' }, 'added')
  t.same(env, { PATH: '/usr/bin' }, 'the environment given is not changed')
  t.equal(withCompileCache(env, '20.20.2', '/cache'), env, 'Node 20: nothing added')
  t.same(withCompileCache({ NODE_COMPILE_CACHE: '/mine' }, '26.12.1', '/cache'), { NODE_COMPILE_CACHE: '/mine' }, 'a chosen directory is kept')
  t.same(withCompileCache({ NODE_COMPILE_CACHE: '' }, '26.12.1', '/cache'), { NODE_COMPILE_CACHE: '/cache' }, 'an empty one counts as unset')
  t.same(withCompileCache({ NODE_DISABLE_COMPILE_CACHE: '1' }, '26.12.1', '/cache'), { NODE_DISABLE_COMPILE_CACHE: '1' }, 'turned off: nothing added')
  t.match(withCompileCache({}, '26.12.1').NODE_COMPILE_CACHE, /node-compile-cache$/, 'by default Node\'s own directory name, in os.tmpdir()')
})

'use strict'
// V8's compile cache for the generations we start (lib/compile-cache.ts): on Node 22.1+ a successor
// gets NODE_COMPILE_CACHE (Node's own default directory, in os.tmpdir()) unless the environment chose
// a directory or turned the cache off; Node writes the cache as a generation exits, once drained
// (not while it serves: writing blocks the event loop), and later successors boot from it. On older Nodes nothing is added. Standalone and supervised agree.
const fs = require('node:fs')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { Service, servingTarget, startSupervised, tempDir, writeRelease, cli, sleep, waitUntilGone } = require('./helpers/processes')
const { request } = require('./faults/common')
const { compileCacheSupported } = require('../dist/lib/compile-cache')

// Two tests at a time: each waits on boots and reloads. Each has its own service, directory and port.
tap.jobs = 2

const PLUGIN = { idleGrace: 200, drainTimeout: 5000, probation: 300 }
const SUPPORTED = compileCacheSupported(process.versions.node)

async function compileCache (target) {
  return (await request(target, { path: '/compile-cache' })).body
}

function filesUnder (dir) {
  // The listing's own file types, no stat() after it: Node writes each entry to a temporary file
  // and renames it, so a name just listed may be gone a moment later.
  return fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()) : []
}

/** A standalone service started without NODE_COMPILE_CACHE (os.tmpdir() is `dir`), then reloaded once. */
async function standaloneReload (t, env) {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const service = Service.start(t, { cwd: dir, env: { NODE_COMPILE_CACHE: undefined, TMPDIR: dir, ...env } })
  const target = await servingTarget(service)
  const first = await compileCache(target)
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  process.kill(service.pid, 'SIGUSR2')
  const pid = await service.generationServing(2)
  return { dir, service, pid, target, first, second: await compileCache(target) }
}

test(`standalone, Node ${process.version}: ${SUPPORTED ? 'the successor boots with the compile cache in os.tmpdir(), written when that generation exits (not while it serves), and a later one boots from it' : 'nothing is added (no NODE_COMPILE_CACHE before Node 22.1)'}`, async (t) => {
  const { dir, service, pid, target, first, second } = await standaloneReload(t, {})
  t.same([first.version, first.directory, first.env], [1, null, null], 'the generation started by hand has no compile cache (nobody asked)')
  if (!SUPPORTED) {
    t.same([second.version, second.env], [2, null], 'the successor gets no NODE_COMPILE_CACHE')
    return
  }
  const cacheDir = path.join(dir, 'node-compile-cache')
  t.equal(second.version, 2)
  t.equal(second.env, cacheDir, 'the successor gets NODE_COMPILE_CACHE: Node\'s default directory in os.tmpdir()')
  t.ok(second.directory?.startsWith(cacheDir), `Node keeps the successor's compile cache there (${second.directory})`)
  // Writing blocks the event loop (a full cache: hundreds of ms): not while generation 2 serves.
  await sleep(2500)
  t.equal(filesUnder(cacheDir).length, 0, 'generation 2 writes nothing while it serves')
  writeRelease(dir, { version: 3, plugin: PLUGIN })
  process.kill(pid, 'SIGUSR2')
  const third = await service.generationServing(3)
  await waitUntilGone(pid, 10000)
  t.ok(filesUnder(cacheDir).length > 0, 'generation 2 wrote it as it exited, once drained')
  writeRelease(dir, { version: 4, plugin: PLUGIN })
  process.kill(third, 'SIGUSR2')
  await service.generationServing(4)
  const fourth = await compileCache(target)
  t.same([fourth.version, fourth.directory], [4, second.directory], 'generation 4 boots with that cache')
})

test('a NODE_COMPILE_CACHE the service was started with is kept, and NODE_DISABLE_COMPILE_CACHE turns it off', async (t) => {
  const chosen = path.join(tempDir(t), 'chosen')
  const kept = await standaloneReload(t, { NODE_COMPILE_CACHE: chosen })
  t.equal(kept.second.env, chosen, 'the successor keeps the directory the service was started with')
  if (SUPPORTED) t.ok(kept.second.directory?.startsWith(chosen), 'and Node uses it')
  t.notOk(fs.existsSync(path.join(kept.dir, 'node-compile-cache')), 'nothing is written to the default directory')
  const off = await standaloneReload(t, { NODE_DISABLE_COMPILE_CACHE: '1' })
  t.same([off.second.version, off.second.env, off.second.directory], [2, null, null], 'NODE_DISABLE_COMPILE_CACHE: no compile cache in the successor')
  t.notOk(fs.existsSync(path.join(off.dir, 'node-compile-cache')), 'and nothing written')
})

test(`supervised, Node ${process.version}: every worker gets the compile cache ${SUPPORTED ? 'from the first' : 'only where Node has it (not here)'}`, async (t) => {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const { control, service } = startSupervised(t, { dir, env: { NODE_COMPILE_CACHE: undefined, TMPDIR: dir }, extra: ['--probation', '300'] })
  const target = await servingTarget(service)
  const expected = SUPPORTED ? path.join(dir, 'node-compile-cache') : null
  t.equal((await compileCache(target)).env, expected, 'the first worker')
  writeRelease(dir, { version: 2, plugin: PLUGIN })
  t.equal((await cli(['reload', '--control', control])).code, 0, 'the reload succeeds')
  const second = await compileCache(target)
  t.same([second.version, second.env], [2, expected], 'the next generation\'s worker')
})

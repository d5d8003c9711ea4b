'use strict'
// V8's compile cache for the generations we start (lib/compile-cache.ts): on Node 22.1+ a successor
// gets NODE_COMPILE_CACHE (Node's own default directory, in os.tmpdir()) unless the environment chose
// a directory or turned the cache off; the generation writes the cache soon after it serves, so the
// next successor boots from it. On older Nodes nothing is added. Standalone and supervised agree.
const fs = require('node:fs')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { Service, servingTarget, startSupervised, tempDir, waitFor, writeRelease, cli } = require('./helpers/processes')
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

test(`standalone, Node ${process.version}: ${SUPPORTED ? 'the successor boots with the compile cache in os.tmpdir(), written soon after it serves, and the next one uses it' : 'nothing is added (no NODE_COMPILE_CACHE before Node 22.1)'}`, async (t) => {
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
  // Node writes the cache at exit; generation 2 serves on and writes it itself soon after it serves.
  const written = await waitFor(() => { const files = filesUnder(cacheDir); return files.length > 0 && files }, 10000, 'the compile cache to be written')
  t.ok(written.length > 0, `generation 2 wrote its compile cache while it serves (${written.length} files)`)
  writeRelease(dir, { version: 3, plugin: PLUGIN })
  process.kill(pid, 'SIGUSR2')
  await service.generationServing(3)
  const third = await compileCache(target)
  t.same([third.version, third.directory], [3, second.directory], 'the next successor boots with the same cache')
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

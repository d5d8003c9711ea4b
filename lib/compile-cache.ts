// V8's compile cache for the generations we start (Node 22.1+ reads NODE_COMPILE_CACHE at startup).
// A successor loads the same node_modules as the generation before it, and compiling them is much
// of its boot: with the cache the bench app's successor booted 11-26% faster on Node 26
// (BENCHMARKS.md), so a reload's successor takes less CPU from the generation that serves meanwhile. Node keys each entry by the file's contents,
// so code that changed is compiled afresh. The directory is the one Node itself picks for
// `module.enableCompileCache()`; a NODE_COMPILE_CACHE already set is kept, and Node's own escape
// hatch, NODE_DISABLE_COMPILE_CACHE, turns it off.
//
// Node writes the cache when a generation exits, once it has drained: nothing waits on it then. Not
// earlier (module.flushCompileCache()): writing is synchronous, and with nothing cached yet (a new
// container) it blocked a serving worker's event loop for 130-355 ms on Node 26 (BENCHMARKS.md,
// "The first seconds"). So the first reload after a start (standalone: the first two) boots
// without the cache.
import { tmpdir } from 'node:os'
import { join } from 'node:path'

type Env = Record<string, string | undefined>

export const COMPILE_CACHE_ENV = 'NODE_COMPILE_CACHE'
export const DISABLE_COMPILE_CACHE_ENV = 'NODE_DISABLE_COMPILE_CACHE'

/** NODE_COMPILE_CACHE came with Node 22.1. */
export function compileCacheSupported (nodeVersion: string): boolean {
  const [major, minor] = nodeVersion.split('.').map(Number)
  return major > 22 || (major === 22 && minor >= 1)
}

/** The environment for a generation we start: NODE_COMPILE_CACHE added where Node reads it and nobody chose otherwise. */
export function withCompileCache (env: Env, nodeVersion = process.versions.node, directory = join(tmpdir(), 'node-compile-cache')): Env {
  if (!compileCacheSupported(nodeVersion)) return env
  if (nonEmpty(env[COMPILE_CACHE_ENV]) || nonEmpty(env[DISABLE_COMPILE_CACHE_ENV])) return env
  return { ...env, [COMPILE_CACHE_ENV]: directory }
}

const nonEmpty = (value: string | undefined): boolean => value !== undefined && value !== ''

// V8's compile cache for the generations we start (Node 22.1+ reads NODE_COMPILE_CACHE at startup).
// A successor loads the same node_modules as the generation before it, and compiling them is much
// of its boot: with the cache the bench app's successor booted 11-26% faster on Node 26
// (BENCHMARKS.md), so a reload's successor takes less CPU from the generation that serves meanwhile. Node keys each entry by the file's contents,
// so code that changed is compiled afresh. The directory is the one Node itself picks for
// `module.enableCompileCache()`; a NODE_COMPILE_CACHE already set is kept, and Node's own escape
// hatch, NODE_DISABLE_COMPILE_CACHE, turns it off.
import * as nodeModule from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

type Env = Record<string, string | undefined>

export const COMPILE_CACHE_ENV = 'NODE_COMPILE_CACHE'
export const DISABLE_COMPILE_CACHE_ENV = 'NODE_DISABLE_COMPILE_CACHE'
/** After a generation serves: once the connections moved to it (over at most 1.5 s, MOVE_RAMP_MAX_MS). */
export const FLUSH_AFTER_SERVING_MS = 2_000

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

interface CompileCacheModule {
  getCompileCacheDir?: () => string | undefined
  flushCompileCache?: () => void
}

/**
 * Node writes the cache when the process exits; a generation that serves writes it a moment after it
 * starts serving, so that the very next reload's successor boots from it too (Node 22.10+).
 */
export function flushCompileCacheSoon (): void {
  // Typed here: @types/node for Node 20, the oldest we support, does not have them.
  const moduleApi = nodeModule as unknown as CompileCacheModule
  if (typeof moduleApi.flushCompileCache !== 'function' || moduleApi.getCompileCacheDir?.() === undefined) return
  setTimeout(() => moduleApi.flushCompileCache?.(), FLUSH_AFTER_SERVING_MS).unref()
}

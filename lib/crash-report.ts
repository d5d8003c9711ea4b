// What ended a successor before it was ready, told to its parent so that the reload's failure names
// it instead of an exit code alone. Two places watch for it: a preload its parent gives the
// successor (boot-report.ts: it sees what ends the process before the app has even loaded the
// plugin, a syntax error or a missing module), and else the plugin's parent link.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { wrap } from './ipc'
import type { ProcessPort } from './process-port'

/** The longest crash cause sent: a line for a reload's failure, not the whole stack. */
const CRASH_CAUSE_MAX = 500

/**
 * What a failure says of an ES module's syntax error: Node keeps its file and line out of reach of
 * JavaScript (it prints them on stderr as the process ends), and a successor's stderr is the
 * service's own (its parent's), wherever the failure is read (the reload command's terminal).
 */
export const ES_MODULE_SYNTAX_WHERE = ' (in an ES module: Node wrote its file and line to the service\'s stderr)'

/** One line for what ended a boot: the error's name and message, and for a syntax error where it is, or where that is told. */
export function crashCause (err: unknown): string {
  const line = err instanceof SyntaxError
    ? syntaxErrorCause(err)
    : (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).split('\n')[0]
  return line.length > CRASH_CAUSE_MAX ? `${line.slice(0, CRASH_CAUSE_MAX - 1)}…` : line
}

function syntaxErrorCause (err: SyntaxError): string {
  const stack = err.stack ?? ''
  // @fastify/autoload appends " at <the first line of the stack>" to the message of a file it could
  // not load: that is the place, told once below (for an ES module, the message over again).
  const appended = ` at ${stack.split('\n', 1)[0]}`
  const message = appended !== ' at ' && err.message.endsWith(appended) ? err.message.slice(0, -appended.length) : err.message
  const line = `${err.name}: ${message}`.split('\n')[0]
  // Node puts a CommonJS syntax error's file and line first in its stack ("/app/app.js:12").
  const at = /^(\S.*:\d+)\n/.exec(stack)
  if (at !== null) return `${line} (${at[1]})`
  return thrownCompilingAnEsModule(stack) ? line + ES_MODULE_SYNTAX_WHERE : line
}

/** Node's ES module loader threw it compiling a file (imported, or required on Node 22.12+), not app code (JSON.parse). */
function thrownCompilingAnEsModule (stack: string): boolean {
  const first = stack.split('\n').find((l) => l.startsWith('    at '))
  return first?.includes('(node:internal/modules/esm/') === true
}

/** Set by the preload while it watches: the parent link leaves the watching to it, and ends it at ready. */
const WATCHING = Symbol.for('fastify-hot-reload.crash-report')

interface Watching { stop: () => void }

/**
 * Tells the parent what an uncaught exception (or unhandled rejection) was before Node prints it and
 * exits (a monitor: nothing else changes). The channel writes a short message at once, before the
 * exit. Returns what stops the watch.
 */
export function reportCrashes (port: ProcessPort): () => void {
  const onCrash = (err: unknown): void => {
    if (port.connected) port.send(wrap({ type: 'crashing', cause: crashCause(err) }), undefined, () => {})
  }
  port.on('uncaughtExceptionMonitor', onCrash)
  return () => port.off('uncaughtExceptionMonitor', onCrash)
}

/** The preload's watch, from its start until stopWatching(). */
export function watchFromPreload (port: ProcessPort): void {
  (globalThis as { [WATCHING]?: Watching })[WATCHING] = { stop: reportCrashes(port) }
}

/** Whether the preload watches already (the parent link then does not). */
export function preloadWatches (): boolean {
  return (globalThis as { [WATCHING]?: Watching })[WATCHING] !== undefined
}

/** The successor said ready: a crash from now on is not a failed boot. */
export function stopPreloadWatch (): void {
  const watching = globalThis as { [WATCHING]?: Watching }
  watching[WATCHING]?.stop()
  delete watching[WATCHING]
}

/** Where the successor's own NODE_OPTIONS waits while the preload's entry is in it (JSON: null when it had none). */
export const ORIGINAL_NODE_OPTIONS = 'FASTIFY_HOT_RELOAD_NODE_OPTIONS'

const PRELOAD = join(__dirname, 'boot-report.js')

/**
 * The preload is gone from under the running service (its release directory removed, or its
 * node_modules being installed again right now): a successor that dies before it is ready then says
 * what ended it only on its stderr.
 */
export function preloadMissing (preload = PRELOAD, pnp = process.versions.pnp !== undefined): boolean {
  return !pnp && !existsSync(preload)
}

/** What a failure says when preloadMissing() was true at the spawn. */
export const PRELOAD_MISSING_CAUSE = `what ended it is on its stderr only: this package's own files (${join(__dirname, '..', '..')}) were gone when it was started (its node_modules being installed again?)`

/**
 * The successor's environment with the preload added to NODE_OPTIONS. Not when the file is gone (a
 * release directory removed under a long-running supervisor: a --require of it would end every
 * successor), nor under Yarn Plug'n'Play (the file is inside a zip only PnP's runtime can read).
 */
export function withCrashReport (started: Record<string, string>, preload = PRELOAD, pnp = process.versions.pnp !== undefined): Record<string, string> {
  // Never twice: the environment a successor was started with (what it starts the next one from,
  // lib/launch.ts) has it already; the user's NODE_OPTIONS comes back first.
  const env = { ...started }
  restoreNodeOptions(env)
  if (pnp || !existsSync(preload)) return env
  const original = env.NODE_OPTIONS
  const quoted = `"${preload.replace(/[\\"]/g, (c) => `\\${c}`)}"`
  return {
    ...env,
    NODE_OPTIONS: original === undefined || original === '' ? `--require ${quoted}` : `${original} --require ${quoted}`,
    [ORIGINAL_NODE_OPTIONS]: JSON.stringify(original ?? null)
  }
}

/** The preload puts the successor's own NODE_OPTIONS back, so that the app's children never load it. */
export function restoreNodeOptions (env: NodeJS.ProcessEnv): void {
  const saved = env[ORIGINAL_NODE_OPTIONS]
  if (saved === undefined) return
  delete env[ORIGINAL_NODE_OPTIONS]
  let original: unknown = null
  try {
    original = JSON.parse(saved)
  } catch {}
  if (typeof original === 'string') env.NODE_OPTIONS = original
  else delete env.NODE_OPTIONS
}

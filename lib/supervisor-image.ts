// keepPid replaces the process with the supervisor (execve): what the new image must keep of the
// contract the process had with whoever started it, and what it must not claim to have.
// - tsx relays SIGTERM/SIGINT to its child and SIGKILLs it unless the child acknowledges the signal
//   within 30 ms, through tsx's preflight (a `--require` tsx adds to the child's command line).
//   Without it the supervisor is killed in the middle of its stop, and its control socket stays.
// - nodemon and PM2 fork the app with an IPC channel (NODE_CHANNEL_FD). The channel's fd is
//   close-on-exec, so the variable would name whatever the new image opens at that number (its own
//   epoll fd): Node takes that for its channel and aborts at exit.
// - Yarn's Plug'n'Play keeps packages in zip archives, readable only through its runtime (`node -r
//   ./.pnp.cjs app.js`): the supervisor's own script is in one, so the image needs that preload too.
//   (`yarn node` puts it in NODE_OPTIONS instead.)
// - The app's preloads are the app's: an APM agent or a metrics exporter given in NODE_OPTIONS
//   (`--require dd-trace/init`, `--import ...`) would run in the supervisor too, which holds none of
//   the app's state, and take the app's port there. The image's NODE_OPTIONS keeps only the runners'
//   preloads above; the workers get the whole of it back (WORKER_NODE_OPTIONS).
import { CHANNEL_VARS } from './launch'

/** The app's own NODE_OPTIONS, kept aside in the supervisor's environment for its workers. */
export const WORKER_NODE_OPTIONS = 'FASTIFY_HOT_RELOAD_WORKER_NODE_OPTIONS'

/**
 * The environment for the supervisor's image: the one the process was started with, less the IPC
 * channel, and with NODE_OPTIONS less the app's preloads.
 */
export function supervisorEnvironment (started: Record<string, string>): Record<string, string> {
  const env = { ...started }
  for (const name of CHANNEL_VARS) delete env[name]
  const options = env.NODE_OPTIONS
  if (options !== undefined) {
    const kept = withoutAppPreloads(options)
    if (kept !== options) {
      env[WORKER_NODE_OPTIONS] = options
      if (kept === '') delete env.NODE_OPTIONS
      else env.NODE_OPTIONS = kept
    }
  }
  return env
}

/** The supervisor's workers run with the app's NODE_OPTIONS, as the process was started. */
export function restoreWorkerNodeOptions (env: Record<string, string | undefined>): void {
  const options = env[WORKER_NODE_OPTIONS]
  if (options === undefined) return
  env.NODE_OPTIONS = options
  delete env[WORKER_NODE_OPTIONS]
}

const TSX_PREFLIGHT = /[\\/]tsx[\\/]dist[\\/]preflight\.cjs$/
const PNP_RUNTIME = /(?:^|[\\/])\.pnp\.c?js$/
const KEPT_PRELOADS = [TSX_PREFLIGHT, PNP_RUNTIME]

/** Node's flags that load code before the app (their value is the module). */
const PRELOAD_FLAGS = new Set(['--require', '-r', '--import', '--loader', '--experimental-loader'])
const PNP_LOADER = /(?:^|[\\/])\.pnp\.loader\.mjs$/

/** NODE_OPTIONS less the preloads other than the runners' (tsx's preflight, Yarn's runtime and loader). */
export function withoutAppPreloads (options: string): string {
  const words = splitNodeOptions(options)
  const kept: string[] = []
  for (let i = 0; i < words.length; i++) {
    const word = words[i]
    const equals = word.indexOf('=')
    const flag = equals === -1 ? word : word.slice(0, equals)
    if (!PRELOAD_FLAGS.has(flag)) {
      kept.push(word)
      continue
    }
    const value = equals === -1 ? words[++i] : word.slice(equals + 1)
    if (value !== undefined && [...KEPT_PRELOADS, PNP_LOADER].some((preload) => preload.test(value))) kept.push(flag, value)
  }
  // Unchanged when nothing was dropped (quoting as the user wrote it).
  return kept.length === words.length && kept.every((word, index) => word === words[index]) ? options : kept.map(quote).join(' ')
}

/** NODE_OPTIONS' words as Node reads them: split at spaces, double quotes group, a backslash escapes. */
function splitNodeOptions (options: string): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  let quoted = false
  for (let i = 0; i < options.length; i++) {
    const char = options[i]
    if (char === '\\' && quoted && i + 1 < options.length) {
      word += options[++i]
    } else if (char === '"') {
      quoted = !quoted
      inWord = true
    } else if (char === ' ' && !quoted) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += char
      inWord = true
    }
  }
  if (inWord) words.push(word)
  return words
}

function quote (word: string): string {
  return /[\s"\\]/.test(word) ? `"${word.replace(/["\\]/g, (char) => `\\${char}`)}"` : word
}

/**
 * The preloads of the app's command line the supervisor must run too: tsx's preflight (its signal
 * acknowledgement) and Yarn PnP's runtime (the supervisor's script is in a zip).
 */
export function runnerPreloads (execArgv: readonly string[]): string[] {
  const kept: string[] = []
  for (let i = 0; i < execArgv.length; i++) {
    const flag = execArgv[i]
    const inline = /^(?:--require|-r)=(.*)$/.exec(flag)
    const value = inline !== null ? inline[1] : (flag === '--require' || flag === '-r') ? execArgv[++i] : undefined
    if (value !== undefined && KEPT_PRELOADS.some((preload) => preload.test(value))) kept.push('--require', value)
  }
  return kept
}

/** A script inside a zip archive: readable only through Yarn's runtime. */
const IN_ARCHIVE = /\.zip[\\/]/

/**
 * Whether the supervisor's image can read its own script. One inside Yarn's zips needs Yarn's
 * runtime preloaded, on the command line (kept above) or in NODE_OPTIONS (`yarn node`); an app that
 * sets the runtime up in its own code (`require('./.pnp.cjs').setup()`) has neither, and its
 * supervisor would die at start.
 */
export function canLoadSupervisor (bin: string, execArgv: readonly string[], env: Record<string, string | undefined>): boolean {
  if (!IN_ARCHIVE.test(bin)) return true
  const preloads = [...runnerPreloads(execArgv), ...(env.NODE_OPTIONS ?? '').split(/\s+/)]
  return preloads.some((preload) => PNP_RUNTIME.test(preload))
}

// How this process was launched, captured at load: the successor is started the same way, from the
// logical working directory, so that a `current -> releases/vN` switch is picked up. On Linux the
// kernel's record is read (/proc/self): the command line and environment the process was really
// started with, whatever the app (or fastify-cli, `--env-file`, dotenv) did to process.argv and
// process.env since.
import { readFileSync, statSync } from 'node:fs'
import { isAbsolute, relative, resolve, sep } from 'node:path'

export interface Launch {
  execPath: string
  execArgv: string[]
  args: string[]
  cwd: string
  /** The environment the process was started with. */
  env: Record<string, string>
}

function sameDirectory (a: string, b: string): boolean {
  try {
    const one = statSync(a)
    const two = statSync(b)
    return one.dev === two.dev && one.ino === two.ino
  } catch {
    return false
  }
}

/** $PWD when it named the working directory at start (it may go through symlinks), else the real cwd. */
export function logicalCwd (pwd: string | undefined, realCwd: string): string {
  if (pwd === undefined || !isAbsolute(pwd)) return realCwd
  // `..` after a symlink means one thing to the kernel and another once normalized: check the
  // normalized path, the one the successor will get.
  const normalized = resolve(pwd)
  return sameDirectory(normalized, realCwd) ? normalized : realCwd
}

/** Node resolves the script against the real cwd; rebase it on the logical one. */
export function rebaseScript (script: string, realCwd: string, cwd: string): string {
  if (cwd === realCwd || !isAbsolute(script)) return script
  const inside = relative(realCwd, script)
  if (inside === '' || inside === '..' || inside.startsWith('..' + sep) || isAbsolute(inside)) return script
  return resolve(cwd, inside)
}

/** NUL-separated strings of a /proc file, or null when it cannot be read. */
function procStrings (path: string): string[] | null {
  try {
    const text = readFileSync(path, 'utf8')
    return text === '' ? null : text.replace(/\0$/, '').split('\0')
  } catch {
    return null
  }
}

/**
 * The script and its arguments as the process was started: from the kernel's command line when it
 * agrees with Node's own flags (it is [node, ...execArgv, script, ...args]); else process.argv. A
 * process.title that overwrote the command line does not agree.
 */
export function startedArgs (cmdline: string[] | null, execArgv: string[], argv: string[]): string[] {
  if (cmdline === null || cmdline.length < 2 + execArgv.length) return argv.slice(1)
  if (execArgv.some((flag, index) => cmdline[1 + index] !== flag)) return argv.slice(1)
  // A longer title (PM2's) leaves the rest of the command line's memory as NULs: empty strings.
  if (cmdline[1 + execArgv.length] === '') return argv.slice(1)
  return cmdline.slice(1 + execArgv.length)
}

/** The environment from /proc/self/environ (as the process was started), else a copy of `fallback`. */
export function startedEnv (environ: string[] | null, fallback: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {}
  if (environ === null) {
    for (const [key, value] of Object.entries(fallback)) if (value !== undefined) env[key] = value
    return env
  }
  for (const entry of environ) {
    const equals = entry.indexOf('=')
    if (equals > 0) env[entry.slice(0, equals)] = entry.slice(equals + 1)
  }
  return env
}

export function captureLaunch (): Launch {
  const realCwd = process.cwd()
  const cwd = logicalCwd(process.env.PWD, realCwd)
  const [script, ...rest] = startedArgs(procStrings('/proc/self/cmdline'), process.execArgv, process.argv)
  return {
    execPath: process.execPath,
    execArgv: [...process.execArgv],
    args: script === undefined ? [] : [rebaseScript(resolve(realCwd, script), realCwd, cwd), ...rest],
    cwd,
    // The whole environment this process was started with, handoff and activation variables included.
    env: startedEnv(procStrings('/proc/self/environ'), process.env)
  }
}

// Development watchers that run the app as a script of their own, restart it themselves and talk to
// it over IPC. Neither keepPid (replaced, the app would leave their channel: fastify-cli's watcher
// then forks it again and again, and leaves the supervisors running when it stops) nor a reload (its
// successor, outside the watcher, would hold the port the watcher's next restart binds) fits there.
const IPC_WATCHERS: Array<{ script: RegExp, name: string }> = [
  { script: /[\\/]fastify-cli[\\/]lib[\\/]watch[\\/]fork\.js$/, name: "fastify-cli's watch mode (fastify start -w)" }
]

/** The development watcher whose own script started this process, if any (its name). */
export function ipcWatcher (script: string | undefined): string | undefined {
  return IPC_WATCHERS.find((watcher) => watcher.script.test(script ?? ''))?.name
}

/** The variables that describe Node's IPC channel to the parent: the channel is this process's own (it survives neither execve nor a spawn). */
export const CHANNEL_VARS = ['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE']

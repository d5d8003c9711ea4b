// Keeps the pid that npm, tsx, PM2, nodemon, Docker or systemd started: a standalone reload moves
// the service to a new process, and whatever waits on the first pid takes its exit for the end of
// the service. So, before the first socket is bound, the process replaces itself (execve: same pid,
// nothing of the app's code or timers left) with the supervisor, which starts the app as its first
// generation and keeps the pid, the sockets and the signals for the service's whole life.
import { resolve } from 'node:path'
import { isMainThread } from 'node:worker_threads'
import type { FastifyInstance } from 'fastify'
import type { Boot } from './boot'
import { hotReloadError } from './errors'
import { addListenHook } from './listen-interceptor'
import { nameFromCommand } from './supervisor/control'
import { ipcWatcher, type Launch } from './launch'
import { canLoadSupervisor, runnerPreloads, supervisorEnvironment } from './supervisor-image'
import type { ResolvedOptions } from './options'

const BIN = resolve(__dirname, '..', '..', 'bin', 'fastify-hot-reload.js')

/** The variable that forces the choice: 1 keeps the pid, 0 does not (tests, or a pid file workflow). */
export const KEEP_PID_ENV = 'FASTIFY_HOT_RELOAD_KEEP_PID'

// A test runner's process must never be replaced: a test that calls listen() would vanish.
const TEST_RUNNER_VARS = ['NODE_TEST_CONTEXT', 'JEST_WORKER_ID', 'VITEST', 'TAP']

export type KeepPidDecision =
  | { keep: true }
  | { keep: false, reason: string, warn: boolean }

export interface KeepPidFacts {
  /** The keepPid option (undefined: the default). */
  option: boolean | undefined
  env: Record<string, string | undefined>
  /** Started by a previous generation or by the supervisor. */
  handedOff: boolean
  /** Listening sockets from systemd socket activation. */
  activated: boolean
  /** A node:cluster worker (PM2 cluster mode): its primary owns the pid and the sockets. */
  clusterWorker?: boolean
  /** The script the process was started with (a watcher's own runner, say). */
  script?: string
  canExecve: boolean
  /** The supervisor's image can read its script (false: it is in Yarn's zips, with no Yarn runtime to read it). */
  supervisorLoadable?: boolean
  mainThread: boolean
  nodeVersion: string
  options: Pick<ResolvedOptions, 'reloadSignals' | 'successor'>
}

/** Pure: whether this process becomes the supervisor, and if not, why (and whether to say so). Throws on a malformed variable. */
export function decideKeepPid (facts: KeepPidFacts): KeepPidDecision {
  const skip = (reason: string, warn = false): KeepPidDecision => ({ keep: false, reason, warn })
  if (facts.handedOff) return skip('started by a previous generation or the supervisor')
  const forced = facts.env[KEEP_PID_ENV]
  if (forced !== undefined && forced !== '0' && forced !== '1') {
    throw hotReloadError('HOT_RELOAD_INVALID_OPTION', `fastify-hot-reload: ${KEEP_PID_ENV} must be 1 (keep the pid) or 0 (standalone reloads), got ${JSON.stringify(forced)}`)
  }
  if (forced === '0') return skip(`${KEEP_PID_ENV}=0`)
  // The variable wins over the option either way: an operator's word over the code's.
  if (facts.option === false && forced !== '1') return skip('keepPid: false')
  const asked = forced === '1' || facts.option === true
  if (!asked) {
    const runner = TEST_RUNNER_VARS.find((name) => facts.env[name] !== undefined)
    if (runner !== undefined) return skip(`a test runner started this process (${runner} is set)`)
    const watcher = ipcWatcher(facts.script)
    if (watcher !== undefined) return skip(`${watcher} restarts the app itself and talks to it over IPC`)
  }
  if (!facts.mainThread) return skip('not the main thread', asked)
  // Replaced by the supervisor, it would lose its primary's channel and bind the port by itself.
  if (facts.clusterWorker === true) return skip('a cluster worker (node:cluster or PM2 cluster mode): its primary owns the process and the sockets', asked)
  // Node marks the fds it inherited close-on-exec at startup: systemd's sockets would not survive.
  if (facts.activated) return skip('systemd socket activation (its sockets cannot cross execve); put `fastify-hot-reload start` in ExecStart to keep the pid', true)
  if (!facts.canExecve) return skip(`Node ${facts.nodeVersion} has no process.execve (Node 22.15 or later has it)`, true)
  // The image would die at start, and the service with it.
  if (facts.supervisorLoadable === false) {
    return skip('the supervisor\'s script is in Yarn\'s zip archives and nothing would load Yarn\'s runtime for it; start the app with `node -r ./.pnp.cjs` or `yarn node`', true)
  }
  const custom = Object.keys(facts.options.successor).filter((key) => (facts.options.successor as Record<string, unknown>)[key] !== undefined)
  if (custom.length > 0) return skip(`the successor option (${custom.join(', ')}) needs standalone reloads`, true)
  return { keep: true }
}

/** The supervisor's command line: its flags from the plugin's options, then the app as it was started. */
export function supervisorArgv (launch: Launch, options: ResolvedOptions, bin: string): string[] {
  const flags = [
    '--from-plugin',
    // Named after the app's script, not after a loader's flag value (tsx's --require preflight.cjs).
    '--name', nameFromCommand([launch.execPath, ...launch.args]),
    '--ready-timeout', String(options.readyTimeout),
    '--drain-timeout', String(options.drainTimeout),
    '--probation', String(options.probation),
    '--boot-nice', String(options.bootNice),
    '--max-draining', String(options.maxDrainingGenerations)
  ]
  // No signal at all is said as "none": the supervisor's own default would add SIGHUP.
  if (options.reloadSignals.length === 0) flags.push('--reload-signal', 'none')
  for (const signal of options.reloadSignals) flags.push('--reload-signal', signal)
  if (options.pidFile !== undefined) flags.push('--pid-file', resolve(options.pidFile))
  // The supervisor runs without the app's preloads (a loader, an APM agent), except what its runner needs (tsx).
  return [launch.execPath, ...runnerPreloads(launch.execArgv), bin, 'start', ...flags, '--', launch.execPath, ...launch.execArgv, ...launch.args]
}

type Execve = (file: string, args: string[], env: Record<string, string>) => never

/**
 * PM2 started us with `wait_ready` (it says so in our environment): it waits for the app's
 * `process.send('ready')` on its IPC channel, which the execve cuts; the app's message goes to the
 * supervisor instead, and PM2 waits out its `listen_timeout`.
 */
export function pm2WaitsForReady (env: Record<string, string | undefined>): boolean {
  return env.pm_id !== undefined && env.wait_ready === 'true'
}

/** Whether this process becomes the supervisor at its first listen(), and what calls that off (the app closed first). */
export interface KeepingPid {
  keeping: boolean
  stop: () => void
}

/**
 * At registration: decides, says why not when it matters, and if the pid is kept, replaces the
 * process at the first listen() of this app (an app that never listens, as in tests with inject(),
 * is never replaced). Returns whether it will, and what takes the hook off (the app closed first).
 * `deferredReload` says whether a reload signal came during the boot: the supervisor's first
 * generation starts after it, from the code on disk then, so it needs no reload of its own.
 */
export function keepPidAtListen (app: FastifyInstance, booted: Boot, options: ResolvedOptions, deferredReload: () => boolean): KeepingPid {
  const execve = (process as { execve?: Execve }).execve
  const decision = decideKeepPid({
    option: options.keepPid,
    env: process.env,
    handedOff: booted.handoff !== null,
    activated: (booted.activated?.length ?? 0) > 0,
    clusterWorker: booted.clusterWorker,
    script: booted.launch.args[0],
    canExecve: typeof execve === 'function',
    supervisorLoadable: canLoadSupervisor(BIN, booted.launch.execArgv, booted.launch.env),
    mainThread: isMainThread,
    nodeVersion: process.version,
    options
  })
  if (!decision.keep) {
    if (decision.warn) {
      app.log.warn({ hotReload: 'pid-not-kept', keepPid: false, reason: decision.reason },
        `hot-reload: the pid is not kept (${decision.reason}): each reload moves the service to a new process; ` +
        'run it under `fastify-hot-reload start` if something waits on this pid')
    }
    return { keeping: false, stop: () => {} }
  }
  if (pm2WaitsForReady(process.env)) {
    app.log.warn({ hotReload: 'pm2-wait-ready', keepPid: true, listenTimeout: Number(process.env.listen_timeout) || undefined },
      'hot-reload: PM2 waits for this app\'s process.send(\'ready\') (wait_ready), but the process becomes the supervisor at its first listen() and ' +
      'loses PM2\'s channel: PM2 will mark it online only after listen_timeout. Drop wait_ready: in fork mode PM2 sends no traffic itself, and readiness is /health')
  }
  const remove = addListenHook((server, args, listen) => {
    if (server !== app.server) return false
    remove()
    const argv = supervisorArgv(booted.launch, options, BIN)
    const deferred = deferredReload()
    app.log.info({ hotReload: 'becoming-supervisor', keepPid: true, deferredReload: deferred },
      `hot-reload: pid ${process.pid} becomes the supervisor and starts the app as its first generation` +
      (deferred ? ' (it loads the code on disk now: that answers the reload signal received during the boot)' : ''))
    // pino writes asynchronously: what is still on its way would be lost with the process image.
    flushLog(app, () => {
      try {
        (execve as Execve)(argv[0], argv, supervisorEnvironment(booted.launch.env))
      } catch (err) {
        app.log.error({ hotReload: 'supervisor-failed', err, keepPid: false }, 'hot-reload: could not become the supervisor; reloads stay standalone')
        listen(args)
      }
    })
    return true
  })
  return { keeping: true, stop: remove }
}

/**
 * Calls `then` once the logger's stream holds nothing unwritten. pino's default stream (SonicBoom)
 * writes asynchronously, and a write still in flight would be lost with the process image.
 */
function flushLog (app: FastifyInstance, then: () => void, deadline = Date.now() + 1_000): void {
  const log = app.log as unknown as Record<symbol, unknown>
  const key = Object.getOwnPropertySymbols(log).find((symbol) => symbol.description === 'pino.stream')
  const stream = key === undefined ? undefined : log[key] as { _writing?: boolean, flushSync?: () => void, flush?: (cb: () => void) => void, worker?: unknown } | undefined
  // A transport (pino-pretty, say) writes from a worker thread, which the new image does not have:
  // its flush(cb) answers once the worker has written what it was given.
  if (stream?.worker !== undefined && typeof stream.flush === 'function') return flushOnce(stream.flush.bind(stream), then, deadline - Date.now())
  if (typeof stream?.flushSync !== 'function') return then()
  if (stream._writing === true && Date.now() < deadline) {
    setTimeout(() => flushLog(app, then, deadline), 1)
    return
  }
  try { stream.flushSync() } catch {}
  then()
}

/** Calls `then` once `flush` called back, or after `limitMs` (a transport that never answers must not hold the start). */
function flushOnce (flush: (cb: () => void) => void, then: () => void, limitMs: number): void {
  let done = false
  const finish = (): void => {
    if (done) return
    done = true
    clearTimeout(timer)
    then()
  }
  const timer = setTimeout(finish, Math.max(0, limitMs))
  try { flush(finish) } catch { finish() }
}

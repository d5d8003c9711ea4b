// The parent's whole view of a successor (the next generation, or a supervisor's worker): starts it
// with our listening sockets at fds 3.., waits for its ready message, and either commits it or takes
// it down again (abort over IPC, then SIGKILL). Once committed, its channel (successor-channel.ts)
// carries handed-over connections one way and news of later drains the other.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { monotonicMs } from './boot-clock'
import { lowerWhileBooting } from './boot-priority'
import { packageRunner } from './node-command'
import { PRELOAD_MISSING_CAUSE, preloadMissing, withCrashReport } from './crash-report'
import { hotReloadError } from './errors'
import type { HotReloadError } from './types'
import { unwrap, type ChildMessage } from './ipc'
import { commit, send, type SuccessorChannel } from './successor-channel'

export interface SpawnPlan {
  execPath: string
  args: string[]
  cwd: string
  env: Record<string, string | undefined>
  /** Our listening fds, to appear in the successor as 3, 4, ... */
  fds: number[]
}

/** A copy of one of our listening sockets that the successor sent back (standalone): a raw handle, not accepting. */
export interface ListenerCopy {
  address: string
  handle: { fd?: number, close: () => void }
}

export type SuccessorOutcome =
  | {
    ok: true
    pid: number
    child: ChildProcess
    listenerCopies: ListenerCopy[]
    /** The successor's own boot: from its spawn to its app's listen() (when it said when that was). */
    bootMs: number | undefined
    commit: () => SuccessorChannel
    abort: () => Promise<void>
  }
  | { ok: false, pid: number | undefined, error: HotReloadError }

export interface StartedSuccessor {
  pid: number | undefined
  /** The process, when it could be spawned. */
  child: ChildProcess | undefined
  outcome: Promise<SuccessorOutcome>
  /**
   * Resolves once it says it has listened (the app's boot is done, its readiness check comes next),
   * or once the outcome is known, whichever is first.
   */
  listened: Promise<void>
  /** Gives up on a successor that is not committed yet: it is taken down and the outcome fails. */
  cancel: (reason: string) => void
}

export interface SuccessorTimings {
  readyTimeout: number
  /** How long an aborted successor may take to drain what it accepted before it is killed. */
  abortGrace: number
  /** Supervised workers: their own process group (the supervisor forwards signals), and their listener messages are the supervisor's. */
  supervised?: boolean
  /** How many niceness steps below us it boots, until it has listened (boot-priority.ts); 0 or absent: ours. */
  bootNice?: number
  /** Standalone: told at its commit, by when we will have exited (handover.ts, drainBoundMs). */
  exitWithinMs?: number
}

/**
 * The longest a successor boots at a lower priority (a starved one gets ours back sooner,
 * boot-priority.ts): most of a boot's CPU (loading and compiling modules) comes early, and a
 * reload should not be held up for long.
 */
const LOWERED_AT_MOST_MS = 1_000

/** An exit that said nothing of its cause (a signal, V8 out of memory, process.exit): the successor's stderr is ours. */
const NO_CAUSE = '; it reported no cause: its stderr, which is the service\'s, may say'

/** How long an exited successor's channel is read for the messages it sent last. */
const EXIT_MESSAGES_MS = 500

function cleanEnv (env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value
  return out
}

/** Spawns the successor and resolves once it is ready (committable) or gone. Never rejects. */
export function startSuccessor (plan: SpawnPlan, timings: SuccessorTimings): StartedSuccessor {
  let child: ChildProcess
  // Its boot counts from here, fork and exec included: a plain start of the app pays them too.
  const spawnedAt = monotonicMs()
  const unreported = preloadMissing()
  try {
    child = spawn(plan.execPath, plan.args, {
      cwd: plan.cwd,
      // A preload tells us what ended it if it dies before it is ready (crash-report.ts).
      env: withCrashReport(cleanEnv(plan.env)),
      stdio: ['inherit', 'inherit', 'inherit', ...plan.fds, 'ipc'],
      // A supervisor forwards signals itself: a terminal's Ctrl-C must not reach workers twice.
      detached: timings.supervised === true
    })
  } catch (cause) {
    return { pid: undefined, child: undefined, outcome: Promise.resolve(spawnFailed(plan, cause)), listened: Promise.resolve(), cancel: () => {} }
  }
  let cancel: (reason: string) => void = () => {}
  let markListened: () => void = () => {}
  const listened = new Promise<void>((resolve) => { markListened = resolve })
  const outcome = watch(child, plan, timings, spawnedAt, (canceller) => { cancel = canceller }, markListened, unreported)
  void outcome.then(markListened)
  return { pid: child.pid, child, outcome, listened, cancel: (reason) => cancel(reason) }
}

function spawnFailed (plan: SpawnPlan, cause: unknown): SuccessorOutcome {
  // A working directory that is gone (a release directory removed) fails the spawn with ENOENT,
  // which Node words as if the executable were missing.
  if ((cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT' && !existsSync(plan.cwd)) {
    return {
      ok: false,
      pid: undefined,
      error: hotReloadError('HOT_RELOAD_SPAWN_FAILED', `could not start the successor: its working directory ${plan.cwd} does not exist`, cause)
    }
  }
  const reason = cause instanceof Error ? cause.message : String(cause)
  return {
    ok: false,
    pid: undefined,
    error: hotReloadError('HOT_RELOAD_SPAWN_FAILED', `could not start the successor (${plan.execPath}): ${reason}`, cause)
  }
}

function watch (child: ChildProcess, plan: SpawnPlan, timings: SuccessorTimings, spawnedAt: number, expose: (cancel: (reason: string) => void) => void, listened: () => void, unreported: boolean): Promise<SuccessorOutcome> {
  return new Promise((resolve) => {
    let settled = false
    let listenedYet = false
    /** What it said ended it ('crashing'), and why it was not ready yet ('not-ready'), for a failure's message. */
    let crashCause: string | undefined
    let notReadyBecause: string | undefined
    /** What its app's boot failed with ('boot-failed'): the first, when several instances failed. */
    let bootFailure: string | undefined
    const listenerCopies: ListenerCopy[] = []
    const exited = new Promise<void>((resolveExit) => {
      if (child.exitCode !== null || child.signalCode !== null) resolveExit()
      else child.once('exit', () => resolveExit())
    })
    const priority = lowerWhileBooting(child.pid, timings.bootNice ?? 0, Math.min(LOWERED_AT_MOST_MS, timings.readyTimeout / 3))
    // A supervisor's workers (its first generation included) are workers, not anyone's successor.
    const who = timings.supervised === true ? 'the worker' : 'the successor'
    const timer = setTimeout(() => {
      fail(hotReloadError('HOT_RELOAD_READY_TIMEOUT', `${who} (pid ${child.pid}) did not report ready within readyTimeout (${timings.readyTimeout} ms): ${whereItWas()}`))
    }, timings.readyTimeout)
    /** How far a successor that timed out got: still booting, or not passing its readiness check (and why). */
    const whereItWas = (): string => {
      if (!listenedYet) return bootFailure === undefined ? 'its app had not called listen() yet (still booting)' : `its app's boot failed (${bootFailure}), and it did not exit`
      return notReadyBecause === undefined ? 'its app called listen(); its readiness check had not passed' : `its readiness check last found: ${notReadyBecause}`
    }

    function cleanup (): void {
      settled = true
      priority.restore()
      clearTimeout(timer)
      child.removeListener('message', onMessage)
      child.removeListener('exit', onExit)
      child.removeListener('error', onError)
    }

    function fail (error: HotReloadError): void {
      if (settled) return
      cleanup()
      for (const copy of listenerCopies.splice(0)) copy.handle.close()
      // A copy on its way when it failed (sent before our abort reached it) would otherwise stay
      // open here: a listening socket kept alive with nobody accepting, whose queued connections
      // are reset when this process exits instead of being refused.
      child.on('message', closeLateCopy)
      // Keep an 'error' listener: a late EPIPE on the channel must not crash the serving process.
      child.on('error', () => {})
      takeDown(child, exited, timings.abortGrace, listenedYet).then(() => resolve({ ok: false, pid: child.pid, error }))
    }

    function onMessage (raw: unknown, handle: unknown): void {
      const message = unwrap(raw) as ChildMessage | undefined
      if (message === undefined) return
      if (message.type === 'listening') {
        listenedYet = true
        priority.restore()
        listened()
      } else if (message.type === 'listener') {
        // A socket that did not come with its message: a runner between us and node (tsx's CLI)
        // passes messages on but not sockets. Nothing the worker binds could be kept for the next.
        if (!isHandle(handle)) return fail(socketsNotPassed(who, child.pid, message.address))
        // Supervised workers' listener messages are the supervisor's (it tracks them itself).
        if (timings.supervised !== true) listenerCopies.push({ address: message.address, handle })
      } else if (message.type === 'ready') {
        cleanup()
        child.on('error', () => {})
        const bootMs = typeof message.listenedAt === 'number' && message.listenedAt >= spawnedAt ? Math.round(message.listenedAt - spawnedAt) : undefined
        resolve({ ok: true, pid: child.pid as number, child, listenerCopies, bootMs, commit: () => commit(child, timings.supervised === true, timings.exitWithinMs), abort: () => takeDown(child, exited, timings.abortGrace, true) })
      } else if (message.type === 'crashing') {
        crashCause = message.cause
      } else if (message.type === 'boot-failed') {
        bootFailure ??= message.cause
      } else if (message.type === 'not-ready') {
        notReadyBecause = message.reason
      } else if (message.type === 'failed') {
        const code = message.code === 'HOT_RELOAD_UNCLAIMED_SOCKET' ? message.code : 'HOT_RELOAD_SUCCESSOR_FAILED'
        fail(hotReloadError(code, `${who} (pid ${child.pid}) failed: ${message.message}`))
      }
    }

    /**
     * A worker started through a package runner (`start -- npm start`) cannot reach us: the runner
     * keeps our channel to itself. The app says so on its stderr; say it in our log too.
     */
    function throughRunner (): string {
      const runner = timings.supervised === true && !listenedYet ? packageRunner(plan.execPath, plan.args) : undefined
      return runner === undefined
        ? ''
        : `. Its command starts node through ${runner}, which does not pass on the channel to the supervisor: give the supervisor the node command itself after "--" ("fastify-hot-reload start -- node app.js", not "-- ${runner} …")`
    }

    function onExit (code: number | null, signal: NodeJS.Signals | null): void {
      const how = signal === null ? `code ${code}` : `signal ${signal}`
      // What ended it: an exception nobody caught, or else a failed boot the app caught and exited on.
      const cause = crashCause ?? (bootFailure !== undefined ? `its app's boot failed: ${bootFailure}` : unreported && !listenedYet ? PRELOAD_MISSING_CAUSE : undefined)
      const exited = (): void => fail(hotReloadError('HOT_RELOAD_SUCCESSOR_EXITED',
        `${who} (pid ${child.pid}) exited with ${how} before it was ready${cause === undefined ? NO_CAUSE : `: ${cause}`}${throughRunner()}`))
      // The exit can be seen before the channel's last messages are read (a 'failed' that says why):
      // read them first, until the channel closes (briefly: a grandchild may hold it open).
      if (!child.connected) return exited()
      const timer = setTimeout(exited, EXIT_MESSAGES_MS)
      child.once('disconnect', () => {
        clearTimeout(timer)
        exited()
      })
    }

    function onError (cause: Error): void {
      if (child.pid === undefined) {
        const failure = spawnFailed(plan, cause)
        if (!failure.ok) fail(failure.error)
      }
    }

    child.on('message', onMessage)
    child.on('exit', onExit)
    child.on('error', onError)
    expose((reason) => fail(hotReloadError('HOT_RELOAD_NOT_SERVING', reason)))
  })
}

function socketsNotPassed (who: string, pid: number | undefined, address: string): HotReloadError {
  return hotReloadError('HOT_RELOAD_WORKER_NOT_CONNECTED',
    `${who} (pid ${pid}) sent its listening socket ${address} without the socket: a runner between us and node passes messages on but not sockets. ` +
    'Give the supervisor the node command itself after "--", with its flags: "fastify-hot-reload start -- node --import tsx app.ts", not "-- tsx app.ts"')
}

/** A listener copy that came after its successor failed: nobody will listen on it. */
function closeLateCopy (raw: unknown, handle: unknown): void {
  if ((unwrap(raw) as ChildMessage | undefined)?.type === 'listener' && isHandle(handle)) handle.close()
}

function isHandle (value: unknown): value is ListenerCopy['handle'] {
  return typeof value === 'object' && value !== null && typeof (value as { close?: unknown }).close === 'function'
}

/**
 * How long a successor told to abort has to exit, or to say it drains ('aborting'), before it is
 * killed. One that has not listened holds no connection to drain; one that does not answer is
 * stopped or stuck (in its boot, in synchronous code) and would not drain anyway. Either would
 * otherwise hold the reload's failure, and a stop waiting for it, for the whole `grace`.
 */
const ABORT_ANSWER_MS = 2_000

/**
 * Asks the successor to drain and exit; kills it when it does not in time: `grace` once it said
 * it drains, if it has `listened` (it may hold connections), else ABORT_ANSWER_MS. Resolves when gone.
 */
function takeDown (child: ChildProcess, exited: Promise<void>, grace: number, listened: boolean): Promise<void> {
  if (child.pid === undefined) return Promise.resolve()
  const kill = (): void => { child.kill('SIGKILL') }
  let killer = setTimeout(kill, Math.min(ABORT_ANSWER_MS, grace))
  const onAnswer = (raw: unknown): void => {
    if ((unwrap(raw) as ChildMessage | undefined)?.type !== 'aborting') return
    child.off('message', onAnswer)
    clearTimeout(killer)
    killer = setTimeout(kill, grace)
  }
  if (listened) child.on('message', onAnswer)
  send(child, { type: 'abort' })
  return exited.then(() => {
    clearTimeout(killer)
    child.off('message', onAnswer)
    if (child.connected) child.disconnect()
  })
}

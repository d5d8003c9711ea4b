// One reload, the same for a standalone generation and the supervisor: build the spawn plan, start
// the successor with the listening sockets, wait for its verdict, and commit it, or report why not.
// Callers say what is theirs: who serves meanwhile, how to log, what to tell systemd.
import { withCompileCache } from './compile-cache'
import { hotReloadError } from './errors'
import { ENV, handoffEnv } from './handoff-env'
import type { Launch } from './launch'
import type { ListeningSockets } from './listeners'
import { formatAddress } from './listener-address'
import { failed, succeeded, type Serving } from './reload-result'
import { startSuccessor, type ListenerCopy, type SpawnPlan, type StartedSuccessor, type SuccessorOutcome, type SuccessorTimings } from './successor'
import type { SuccessorChannel } from './successor-channel'
import type { HotReloadError, ReloadResult, SuccessorOptions } from './types'

/** The command a generation runs: the same binary, flags, script and arguments as ours, by default. */
export interface Command {
  execPath: string
  args: string[]
  cwd: string
  env: Record<string, string | undefined>
}

/** A standalone successor's command: the `successor` option over how this process was launched, in the logical cwd. */
export function successorCommand (launch: Launch, overrides: SuccessorOptions, env: Record<string, string | undefined>): Command {
  const cwd = overrides.cwd ?? launch.cwd
  return {
    execPath: overrides.execPath ?? launch.execPath,
    args: [...(overrides.execArgv ?? launch.execArgv), ...(overrides.args ?? launch.args)],
    cwd,
    env: { ...env, ...overrides.env, PWD: cwd }
  }
}

export interface PlannedSpawn extends SpawnPlan {
  /** The listening addresses, formatted, in fd order (for the logs). */
  addresses: string[]
}

/**
 * The successor's command with the handoff of our sockets added (fds 3.., LISTEN_FDS and our
 * markers) and V8's compile cache (compile-cache.ts); `instances`: how many Fastify instances the
 * sockets come from.
 */
export function spawnPlan (command: Command, sockets: ListeningSockets, generation: number, parentPid: number, supervised = false, instances = 1): PlannedSpawn {
  return {
    ...command,
    env: { ...withCompileCache(command.env), ...handoffEnv(sockets.addresses, generation, parentPid, supervised, instances) },
    fds: sockets.fds,
    addresses: sockets.addresses.map(formatAddress)
  }
}

export interface ReloadRun {
  /** Who serves if the reload fails. */
  serving: () => Serving
  /** The plan; may throw a HotReloadError (nothing to hand over). */
  plan: () => PlannedSpawn
  timings: SuccessorTimings
  /** A reason to take a ready successor down instead of committing it (we are shutting down), or undefined. */
  cancelled: () => string | undefined
  /** The successor was spawned (or could not be): for the logs and the 'reloading' event. */
  started: (successor: StartedSuccessor, plan: PlannedSpawn) => void
}

export type ReloadOutcome =
  | { result: ReloadResult & { ok: true }, channel: SuccessorChannel, pid: number, child: SuccessorChannel['child'], listenerCopies: ListenerCopy[] }
  | { result: ReloadResult & { ok: false }, channel?: undefined }

/** Spawns generation `next` and resolves once it is committed or gone. Never rejects. */
export async function runReload (next: number, run: ReloadRun): Promise<ReloadOutcome> {
  const startedAt = performance.now()
  const failure = (pid: number | undefined, error: HotReloadError) =>
    ({ result: failed(run.serving(), startedAt, pid, error) as ReloadResult & { ok: false } })
  let plan: PlannedSpawn
  try {
    plan = run.plan()
  } catch (error) {
    return failure(undefined, error as HotReloadError)
  }
  const successor = startSuccessor(plan, run.timings)
  run.started(successor, plan)
  const outcome = await successor.outcome
  if (!outcome.ok) return failure(outcome.pid, outcome.error)
  const cancelled = run.cancelled()
  if (cancelled !== undefined) {
    await outcome.abort()
    return failure(outcome.pid, hotReloadError('HOT_RELOAD_NOT_SERVING', cancelled))
  }
  const channel = outcome.commit()
  return {
    result: succeeded(next, outcome.pid, startedAt, outcome.bootMs) as ReloadResult & { ok: true },
    channel,
    pid: outcome.pid,
    child: outcome.child,
    listenerCopies: outcome.listenerCopies
  }
}

export interface CohortRun extends Omit<ReloadRun, 'started' | 'plan'> {
  /** Each slot's plan (its own sockets, with a socket per slot); may throw a HotReloadError. */
  plan: (slot: number) => PlannedSpawn
  /** A worker was spawned (or could not be) for `slot`. */
  started: (successor: StartedSuccessor, plan: PlannedSpawn, slot: number) => void
  /** How many workers boot at once (the next ones once those have listened); default all. */
  concurrency?: number
}

export type CohortOutcome =
  | { result: ReloadResult & { ok: true }, members: Array<{ slot: number, pid: number, channel: SuccessorChannel }> }
  | { result: ReloadResult & { ok: false }, members?: undefined }

/**
 * Several workers of generation `next` (the supervisor's --workers), all or nothing: each gets the
 * sockets and its slot; they boot `concurrency` at a time (a wave starts once the one before has
 * listened), and all are committed once every one is ready; the first that fails takes the others
 * down (no waiting for the slowest to time out, no later wave started). Never rejects.
 */
export async function runCohort (next: number, slots: number[], run: CohortRun): Promise<CohortOutcome> {
  const startedAt = performance.now()
  const failure = (pid: number | undefined, error: HotReloadError): CohortOutcome =>
    ({ result: failed(run.serving(), startedAt, pid, error) as ReloadResult & { ok: false } })
  let plans: PlannedSpawn[]
  try {
    plans = slots.map((slot) => run.plan(slot))
  } catch (error) {
    return failure(undefined, error as HotReloadError)
  }
  const concurrency = Math.max(1, Math.min(run.concurrency ?? slots.length, slots.length))
  // Each slot's outcome, by its index in `slots`, once its worker is ready.
  const readyBySlot = new Map<number, SuccessorOutcome & { ok: true }>()
  const started: StartedSuccessor[] = []
  const settling: Array<Promise<void>> = []
  let first: { pid: number | undefined, error: HotReloadError } | undefined
  const failWith = (pid: number | undefined, error: HotReloadError, except?: StartedSuccessor): void => {
    if (first !== undefined) return
    first = { pid, error }
    for (const other of started) if (other !== except) other.cancel(`another worker of generation ${next} failed: ${error.message}`)
  }
  // Every worker is ready or gone: what exits from here on was taken down, or is the supervisor's to see.
  let decided = false
  // The workers' own boot, as the reload waited for it: each wave's slowest, added up.
  const slowestOfWave: number[] = []
  for (let from = 0, wave = 0; from < slots.length; from += concurrency, wave++) {
    // A worker failed, or we are stopping: no further wave boots (what is ready is taken down below).
    if (first !== undefined || (from > 0 && run.cancelled() !== undefined)) break
    const booting = slots.slice(from, from + concurrency).map((slot, index) => {
      const plan = plans[from + index]
      const slotPlan = { ...plan, env: { ...plan.env, [ENV.slot]: String(slot) } }
      const successor = startSuccessor(slotPlan, run.timings)
      run.started(successor, slotPlan, slot)
      started.push(successor)
      settling.push(successor.outcome.then((outcome) => {
        if (outcome.ok) {
          readyBySlot.set(from + index, outcome)
          if (outcome.bootMs !== undefined) slowestOfWave[wave] = Math.max(slowestOfWave[wave] ?? 0, outcome.bootMs)
          // Ready is not committed: one that dies while the others still boot fails the generation
          // (committed, its slot would have no worker, and nobody would know).
          outcome.child.once('exit', (code, signal) => {
            if (decided || !readyBySlot.delete(from + index)) return
            const how = signal === null ? `code ${code}` : `signal ${signal}`
            failWith(outcome.pid, hotReloadError('HOT_RELOAD_SUCCESSOR_EXITED', `the worker (pid ${outcome.pid}) exited with ${how} after it was ready, before every worker of generation ${next} was`))
          })
        } else {
          failWith(outcome.pid, outcome.error, successor)
        }
      }))
      return successor
    })
    // The next wave boots once this one has listened: its readiness checks overlap that boot.
    await Promise.all(booting.map((successor) => successor.listened))
  }
  await Promise.all(settling)
  decided = true
  const bootMs = slowestOfWave.length === 0 ? undefined : slowestOfWave.reduce((sum, ms) => sum + (ms ?? 0), 0)
  const ready = [...readyBySlot.entries()].sort(([a], [b]) => a - b)
  const cancelled = first === undefined ? run.cancelled() : undefined
  if (first !== undefined || cancelled !== undefined || ready.length === 0) {
    await Promise.all(ready.map(([, outcome]) => outcome.abort()))
    return first !== undefined
      ? failure(first.pid, first.error)
      : failure(ready[0]?.[1].pid, hotReloadError('HOT_RELOAD_NOT_SERVING', cancelled ?? 'no worker to start'))
  }
  const members = ready.map(([index, outcome]) => ({ slot: slots[index], pid: outcome.pid, channel: outcome.commit() }))
  return { result: succeeded(next, members[0].pid, startedAt, bootMs) as ReloadResult & { ok: true }, members }
}

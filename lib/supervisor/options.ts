// The supervisor's options (what `fastify-hot-reload start` makes of its flags) and its logger: in a
// module of their own so that every supervisor module can name them without importing the Supervisor.
import type { InheritedSocket } from '../handoff-env'
import type { ServiceStatus } from '../service-status'

export interface SupervisorLogger {
  info (obj: object | string, msg?: string): void
  warn (obj: object | string, msg?: string): void
  error (obj: object | string, msg?: string): void
}

export interface SupervisorOptions {
  /** The worker's command: [executable, ...args]. */
  command: string[]
  cwd: string
  env: Record<string, string | undefined>
  readyTimeout: number
  drainTimeout: number
  restartDelay: number
  restartMaxDelay: number
  /** Old generations that may drain at once; beyond it the oldest is told to cut what is left. */
  maxDraining: number
  /**
   * How long (ms) a new generation must serve before its predecessor may finish; should it die
   * sooner, the predecessor serves again. 0 turns it off (a crashed worker is then restarted).
   */
  probation: number
  /** Sockets systemd passed us (socket activation); more may come from the first worker. */
  activated: InheritedSocket[]
  /** Worker processes per generation (default 1). */
  workers?: number
  /** A reload replaces this many slots at a time (rolling); default all at once. */
  reloadBatch?: number
  /** A reload's new workers boot this many at a time (the next once those have listened); default all at once. */
  bootConcurrency?: number
  /** A reload's new workers boot this many niceness steps below the serving ones, until they have listened; 0: no change. */
  bootNice?: number
  log: SupervisorLogger
  /** systemd and the like. */
  status: ServiceStatus
}

/**
 * --boot-concurrency's default: half the CPUs (at least one, at most every worker). New workers boot
 * beside the generation that serves; booting all at once on every core starved it (p99 7-8x
 * steady with 2 workers on 2 cores, BENCHMARKS.md), so half the cores keep serving meanwhile.
 */
export function defaultBootConcurrency (workers: number, cpus: number): number {
  return Math.min(workers, Math.max(1, Math.floor(cpus / 2)))
}

// The worker processes as the supervisor tracks them: each one has a slot in its generation's
// cohort (--workers N: slots 0 to N - 1), and the cohort is what serves, drains and is on probation.
import type { ChildProcess } from 'node:child_process'
import { PACKAGE_VERSION } from '../package-version'
import type { Probation } from '../probation'

export type WorkerState = 'starting' | 'serving' | 'draining'

export interface Worker {
  generation: number
  slot: number
  pid: number
  child: ChildProcess
  state: WorkerState
  startedAt: number
  servingSince?: number
  /** How many Fastify instances it said listen (its 'ready', then 'instances'); 1 when not said. */
  instances?: number
  /** It said it can accept on another slot's socket (its 'ready'). */
  covers?: boolean
  /** Told to drain, it says when it no longer accepts (its 'ready'; older releases do not). */
  acksDrain?: boolean
  /** The version of this package its plugin runs (its 'ready'; older releases do not say). */
  version?: string
  /** Its generation's cohort, once committed. */
  cohort?: Cohort
  /** It said it stops (a signal sent to the worker itself, not through us): its exit is no crash. */
  stopping?: boolean
}

/** The workers of one generation. */
export interface Cohort {
  generation: number
  /** Its live workers, by slot. */
  workers: Map<number, Worker>
  /** Told to end its drain now (too many generations draining). */
  cut?: boolean
  /** Serving, on probation: the cohort it took over from, which waits to be retired or resumed. */
  predecessor?: Cohort
  probation?: Probation
  /** A rolling reload builds it, and one of its workers crashed (which, and how): the reload fails. */
  crashed?: { pid: number, reason: string }
}

/**
 * The version of this package a cohort's plugin runs, when it is not the supervisor's own (the
 * package was upgraded under the running service): the 'generation-serving' line says so, since
 * what the supervisor itself does stays the old version's until it is restarted.
 */
export function otherVersion (cohort: Cohort): { workerVersion: string } | undefined {
  const version = [...cohort.workers.values()].find((w) => w.version !== undefined)?.version
  return version === undefined || version === PACKAGE_VERSION ? undefined : { workerVersion: version }
}

/** The words for otherVersion() in a log line. */
export function otherVersionWords (other: { workerVersion: string } | undefined): string {
  return other === undefined ? '' : `; it runs fastify-hot-reload ${other.workerVersion}, this supervisor ${PACKAGE_VERSION} until it is restarted`
}

// One worker process as the supervisor tracks it.
import type { ChildProcess } from 'node:child_process'
import type { Probation } from '../probation'

export type WorkerState = 'starting' | 'serving' | 'draining'

export interface Worker {
  generation: number
  pid: number
  child: ChildProcess
  state: WorkerState
  startedAt: number
  servingSince?: number
  /** Told to end its drain now (too many generations draining). */
  cut?: boolean
  /** Serving, on probation: the generation it took over from, which waits to be retired or resumed. */
  predecessor?: Worker
  probation?: Probation
  /** How many Fastify instances it said listen (its 'ready', then 'instances'); 1 when not said. */
  instances?: number
}

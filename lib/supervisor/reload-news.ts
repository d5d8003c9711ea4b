// Tells the workers that serve when a reload begins what becomes of it, whoever asked for it (a
// signal, the control socket, a worker's reload()), so that their `fastify.hotReload` says the same
// as a standalone generation's: 'reloading' once their successor (the new worker of their slot) is
// spawned, then 'reloaded' or 'reloadFailed' with the result, sent before any drain order, as a
// standalone generation hears its successor's verdict before it drains.
import { toWire } from '../reload-result'
import { send } from '../successor'
import type { ReloadResult } from '../types'
import type { Worker } from './worker'

export class ReloadNews {
  /** @param told the workers serving as the reload begins */
  constructor (private readonly told: readonly Worker[]) {}

  /** A new worker of `generation` was spawned for `slot` (its pid undefined when the spawn failed). */
  started (slot: number, generation: number, successorPid: number | undefined): void {
    for (const worker of this.told) {
      if (worker.slot === slot) send(worker.child, { type: 'reloading', generation, successorPid })
    }
  }

  finished (result: ReloadResult): void {
    for (const worker of this.told) send(worker.child, { type: 'reload-finished', result: toWire(result) })
  }
}

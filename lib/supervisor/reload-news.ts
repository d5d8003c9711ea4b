// Tells the workers that serve when a reload begins what becomes of it, whoever asked for it (a
// signal, the control socket, a worker's reload()), so that their `fastify.hotReload` says the same
// as a standalone generation's: 'reloading' once their successor (the new worker of their slot) is
// spawned, then 'reloaded' or 'reloadFailed' with the result, sent before any drain order, as a
// standalone generation hears its successor's verdict before it drains.
import { toWire } from '../reload-result'
import { send } from '../successor-channel'
import type { ReloadResult } from '../types'
import type { Worker } from './worker'

export class ReloadNews {
  /** Slots whose serving worker heard 'reloading'. */
  private readonly reloading = new Set<number>()

  /**
   * @param told the workers serving as the reload begins
   * @param generation the generation the reload starts
   */
  constructor (private readonly told: readonly Worker[], private readonly generation: number) {}

  /** A new worker was spawned for `slot` (its pid undefined when the spawn failed). */
  started (slot: number, generation: number, successorPid: number | undefined): void {
    this.reloading.add(slot)
    for (const worker of this.told) {
      if (worker.slot === slot) send(worker.child, { type: 'reloading', generation, successorPid })
    }
  }

  /**
   * The outcome, to every worker told of the reload. A slot whose new worker never started (an
   * earlier one failed, so no later wave or batch booted) hears 'reloading' first, with no successor:
   * every worker hears the same two events.
   */
  finished (result: ReloadResult): void {
    for (const worker of this.told) {
      if (!this.reloading.has(worker.slot)) send(worker.child, { type: 'reloading', generation: this.generation, successorPid: undefined })
      send(worker.child, { type: 'reload-finished', result: toWire(result) })
    }
  }
}

// Slots of the serving generation with no serving worker (its worker crashed and waits for its
// restart, or the replacement still boots). The kernel keeps hashing 1/N of new connections to
// such a slot's SO_REUSEPORT socket, where they would wait for the whole gap (BENCHMARKS.md, "A slot
// without a worker"). So a serving worker of another slot gets a copy of the slot's socket and
// accepts on it too ('cover'), until a worker serves in the slot again ('uncover': the worker
// closes its copy; we keep ours, so nothing queued on the socket is reset).
import type { Socket } from 'node:net'
import { wrap } from '../ipc'
import { formatAddress } from '../listener-address'
import { send } from '../successor-channel'
import type { Cohorts } from './cohorts'
import type { HeldSockets } from './held-sockets'
import type { SupervisorLogger } from './options'
import type { Worker } from './worker'

export class EmptySlots {
  /** Who accepts on each empty slot's socket, and since when. */
  private readonly covering = new Map<number, { worker: Worker, since: number }>()

  constructor (
    private readonly slots: number[],
    private readonly held: HeldSockets,
    private readonly cohorts: Cohorts,
    private readonly log: SupervisorLogger
  ) {}

  /** The worker covering `slot`, if any. */
  coveredBy (slot: number): Worker | undefined {
    return this.covering.get(slot)?.worker
  }

  /** Called whenever who serves changes: covers what is empty, uncovers what serves again. */
  update (): void {
    if (!this.held.perSlot) return
    const serving = this.cohorts.servingWorkers()
    const served = new Set(serving.map((w) => w.slot))
    for (const [slot, { worker, since }] of this.covering) {
      const alive = worker.state === 'serving' && this.cohorts.workers.has(worker.pid)
      if (served.has(slot) || !alive) {
        this.covering.delete(slot)
        // A worker that drains closed its copies already; one that exited has none.
        if (alive) send(worker.child, { type: 'uncover', slot })
        this.log.info({ supervisor: 'slot-uncovered', slot, workerPid: worker.pid, durationMs: Date.now() - since },
          `supervisor: slot ${slot} ${served.has(slot) ? 'serves again' : 'lost its cover'}; pid ${worker.pid} stops accepting on its socket`)
      }
    }
    const able = serving.filter((w) => w.covers === true && w.child.connected)
    for (const slot of this.slots) {
      const sockets = this.held.forSlot(slot)
      if (served.has(slot) || this.covering.has(slot) || sockets.length === 0) continue
      const worker = this.leastBusy(able)
      if (worker === undefined) return
      for (const socket of sockets) {
        if (socket.handle === undefined) continue
        worker.child.send(wrap({ type: 'cover', slot, listener: formatAddress(socket.address) }), socket.handle as Socket)
      }
      this.covering.set(slot, { worker, since: Date.now() })
      this.log.warn({ supervisor: 'slot-covered', slot, workerPid: worker.pid },
        `supervisor: slot ${slot} has no worker; pid ${worker.pid} (slot ${worker.slot}) accepts on its socket meanwhile`)
    }
  }

  /** The worker covering the fewest slots (the lowest slot first). */
  private leastBusy (workers: Worker[]): Worker | undefined {
    const load = (w: Worker): number => [...this.covering.values()].filter((c) => c.worker === w).length
    return [...workers].sort((a, b) => load(a) - load(b) || a.slot - b.slot)[0]
  }
}

// The supervisor's side of a probation: a new generation serves, its predecessor drains but waits
// for the verdict. Proven (the clock ran out, or it moved on): the predecessor retires. Dead within
// the probation: the predecessor gets copies of the sockets and serves again.
import type { Socket } from 'node:net'
import { wrap } from '../ipc'
import { formatAddress, type ListenerAddress } from '../listener-address'
import { handleOfHeldFd } from '../node-internals'
import { Probation } from '../probation'
import { send } from '../successor'
import type { SupervisorLogger } from './supervisor'
import type { Worker } from './worker'

export interface HeldSocket {
  address: ListenerAddress
  fd: number
  /** The handle a worker sent up: held so that the fd stays open. */
  handle?: unknown
}

export class Probations {
  constructor (
    private readonly ms: number,
    private readonly isTracked: (worker: Worker) => boolean,
    private readonly log: SupervisorLogger
  ) {}

  /** `serving` took over from `previous`: it drains, and with a probation waits for the verdict. */
  begin (serving: Worker, previous: Worker): void {
    previous.state = 'draining'
    const probation = this.ms > 0
    send(previous.child, { type: 'drain', probation })
    if (!probation) return
    serving.predecessor = previous
    serving.probation = new Probation(this.ms, () => this.retire(serving))
  }

  /** The serving generation proved itself: its predecessor may finish. */
  end (worker: Worker): void {
    if (worker.probation !== undefined) worker.probation.end()
    else this.retire(worker)
  }

  /** A new generation serves: any probation still running is over (there is no going back two steps). */
  endAll (workers: Iterable<Worker>): void {
    for (const worker of workers) if (worker.predecessor !== undefined) this.end(worker)
  }

  /**
   * The serving generation died: within its probation, its predecessor gets copies of the sockets
   * and serves again. Returns the predecessor that serves, or undefined when none is able to.
   */
  resume (worker: Worker, how: string, sockets: HeldSocket[]): { predecessor: Worker, reason: string } | undefined {
    const predecessor = worker.predecessor
    if (predecessor === undefined || worker.probation?.failed() !== true) return undefined
    worker.predecessor = undefined
    // Whatever happens next, the predecessor must not wait for a word that never comes.
    const retire = (): undefined => {
      if (this.isTracked(predecessor)) send(predecessor.child, { type: 'retire' })
      return undefined
    }
    if (predecessor.cut === true || !this.isTracked(predecessor) || !predecessor.child.connected) return retire()
    const reason = `generation ${worker.generation} (pid ${worker.pid}) exited with ${how} ${Date.now() - (worker.servingSince ?? worker.startedAt)} ms after it took over`
    try {
      for (const socket of sockets) socket.handle ??= handleOfHeldFd(socket.fd)
    } catch (err) {
      // A Node whose internals we do not know: restart instead, as without a probation.
      this.log.error({ supervisor: 'sockets-not-returned', err }, 'supervisor: cannot hand the sockets back to the previous generation')
      return retire()
    }
    for (const socket of sockets) {
      predecessor.child.send(wrap({ type: 'listener', address: formatAddress(socket.address) }), socket.handle as Socket)
    }
    send(predecessor.child, { type: 'resume', successorPid: worker.pid, reason })
    return { predecessor, reason }
  }

  private retire (worker: Worker): void {
    const predecessor = worker.predecessor
    worker.predecessor = undefined
    if (predecessor !== undefined && this.isTracked(predecessor)) send(predecessor.child, { type: 'retire' })
  }
}

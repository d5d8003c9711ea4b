// The supervisor's side of a probation: a new generation (all its workers) serves, its predecessor
// drains but waits for the verdict. Proven (the clock ran out, or it moved on): the predecessor
// retires. A worker of it dead within the probation: every worker of the predecessor gets copies of
// the sockets and serves again, and the rest of the failed generation drains away.
import type { Socket } from 'node:net'
import { moveRampMs } from '../connection-handoff'
import { wrap, type ParentMessage } from '../ipc'
import { formatAddress, type ListenerAddress } from '../listener-address'
import { handleOfHeldFd } from '../node-internals'
import { Probation } from '../probation'
import { send } from '../successor-channel'
import { DrainAcks } from './drain-acks'
import { DrainDeadlines } from './drain-deadlines'
import type { SupervisorLogger } from './options'
import type { Cohort, Worker } from './worker'

export interface HeldSocket {
  address: ListenerAddress
  fd: number
  /** The handle a worker sent up: held so that the fd stays open. */
  handle?: unknown
}

export class Probations {
  /** How long a draining worker spreads its connections' moves over: our probation decides, not the worker's own option. */
  private readonly rampMs: number
  /** A worker told to drain that has not exited in time is killed. */
  private readonly deadlines: DrainDeadlines
  /** Which workers told to drain have yet to say they no longer accept. */
  private readonly acks = new DrainAcks()

  constructor (
    private readonly ms: number,
    drainTimeout: number,
    private readonly isTracked: (worker: Worker) => boolean,
    private readonly log: SupervisorLogger
  ) {
    this.rampMs = moveRampMs(ms, drainTimeout)
    this.deadlines = new DrainDeadlines(drainTimeout, ms, isTracked, log)
  }

  /** Tells a worker to drain (and, with `probation`, to wait for the verdict), within a deadline. */
  drain (worker: Worker, probation: boolean): void {
    worker.state = 'draining'
    this.acks.expect(worker)
    send(worker.child, this.drainOrder(probation))
    this.deadlines.arm(worker, probation)
  }

  /** The worker no longer accepts connections: it said so after its drain order, or it exited. */
  acceptingStopped (worker: Worker): void {
    this.acks.heard(worker)
  }

  /** Resolves once these workers, told to drain, no longer accept (or after a short limit: see DrainAcks). */
  async stoppedAccepting (workers: Iterable<Worker>): Promise<void> {
    await this.acks.settled(workers)
  }

  private drainOrder (probation: boolean): ParentMessage {
    return { type: 'drain', probation, rampMs: this.rampMs }
  }

  /** `serving` took over from `previous`: it drains, and with a probation waits for the verdict. */
  begin (serving: Cohort, previous: Cohort): void {
    const probation = this.ms > 0
    for (const worker of previous.workers.values()) this.drain(worker, probation)
    if (!probation) return
    serving.predecessor = previous
    serving.probation = new Probation(this.ms, () => this.retire(serving))
  }

  /** The serving generation proved itself: its predecessor may finish. */
  end (cohort: Cohort): void {
    if (cohort.probation !== undefined) cohort.probation.end()
    else this.retire(cohort)
  }

  /** A new generation serves: any probation still running is over (there is no going back two steps). */
  endAll (cohorts: Iterable<Cohort>): void {
    for (const cohort of cohorts) if (cohort.predecessor !== undefined) this.end(cohort)
  }

  /**
   * A worker of the serving generation died: within its probation, the predecessor's workers get
   * copies of the sockets and serve again. Returns the cohort that serves, or undefined when none is
   * able to.
   */
  resume (cohort: Cohort, worker: Worker, how: string, sockets: (worker: Worker) => HeldSocket[]): { predecessor: Cohort, reason: string } | undefined {
    const predecessor = cohort.predecessor
    if (predecessor === undefined || cohort.probation?.failed() !== true) return undefined
    cohort.predecessor = undefined
    const live = [...predecessor.workers.values()].filter((w) => this.isTracked(w) && w.child.connected)
    // Whatever happens next, the predecessor must not wait for a word that never comes.
    const retire = (): undefined => {
      for (const w of predecessor.workers.values()) if (this.isTracked(w)) send(w.child, { type: 'retire' })
      return undefined
    }
    if (predecessor.cut === true || live.length === 0) return retire()
    const reason = `generation ${worker.generation} (pid ${worker.pid}) exited with ${how} ${Date.now() - (worker.servingSince ?? worker.startedAt)} ms after it took over`
    try {
      for (const w of live) for (const socket of sockets(w)) socket.handle ??= handleOfHeldFd(socket.fd)
    } catch (err) {
      // A Node whose internals we do not know: restart instead, as without a probation.
      this.log.error({ supervisor: 'sockets-not-returned', err }, 'supervisor: cannot hand the sockets back to the previous generation')
      return retire()
    }
    this.serveAgain(live, sockets, worker.pid, reason)
    return { predecessor, reason }
  }

  /** Workers draining on probation get copies of the sockets and serve again. */
  serveAgain (workers: Worker[], sockets: (worker: Worker) => HeldSocket[], successorPid: number | undefined, reason: string): void {
    for (const w of workers) {
      for (const socket of sockets(w)) socket.handle ??= handleOfHeldFd(socket.fd)
      for (const socket of sockets(w)) w.child.send(wrap({ type: 'listener', address: formatAddress(socket.address) }), socket.handle as Socket)
      send(w.child, { type: 'resume', successorPid, reason })
      this.deadlines.cancel(w)
    }
  }

  /** A rolling reload is over: its old workers already drain on probation; the verdict is the new cohort's. */
  watch (serving: Cohort, previous: Cohort): void {
    if (this.ms <= 0) return this.retire({ ...serving, predecessor: previous })
    serving.predecessor = previous
    serving.probation = new Probation(this.ms, () => this.retire(serving))
  }

  private retire (cohort: Cohort): void {
    const predecessor = cohort.predecessor
    cohort.predecessor = undefined
    if (predecessor === undefined) return
    for (const worker of predecessor.workers.values()) if (this.isTracked(worker)) send(worker.child, { type: 'retire' })
  }
}

// The supervisor's workers and cohorts: every live worker (by pid), the serving cohort, the one a
// rolling reload builds, the latest generation number, how many Fastify instances the held sockets
// belong to, and the round robin for connections a draining worker hands over. The one owner of that
// state: the Supervisor, the rolling reload and the worker messages change it only through these
// methods. (A worker's own `state` is set where its order is sent: join, drain, serve again.)
import type { Socket } from 'node:net'
import { wrap } from '../ipc'
import { send } from '../successor-channel'
import type { SupervisorLogger } from './options'
import type { Cohort, Worker } from './worker'

export class Cohorts {
  private readonly live = new Map<number, Worker>()
  /** The serving generation's workers. */
  private serving: Cohort | undefined
  /** The new generation while a rolling reload builds it. */
  private rolling: Cohort | undefined
  private latest = 0
  /** The serving generation that lost its last worker (vacate). */
  private lastEmptied: number | undefined
  /** How many Fastify instances the held sockets belong to: a serving worker's word (the next worker waits for that many). */
  private instanceCount = 1
  /** Round robin over the serving workers for connections handed over by a draining one. */
  private nextTarget = 0

  constructor (private readonly maxDraining: number, private readonly log: SupervisorLogger) {}

  /** Every live worker, by pid: starting, serving or draining. */
  get workers (): ReadonlyMap<number, Worker> {
    return this.live
  }

  get current (): Cohort | undefined {
    return this.serving
  }

  /** The newest generation that served (the next one is this + 1). */
  get generation (): number {
    return this.latest
  }

  get instances (): number {
    return this.instanceCount
  }

  /** The serving worker of the lowest slot. */
  get servingPid (): number | undefined {
    return this.servingWorkers()[0]?.pid
  }

  /** Every worker that accepts now: the serving generation's, and during a rolling reload the new one's too. */
  servingWorkers (): Worker[] {
    const cohorts = [this.serving, this.rolling].filter((c): c is Cohort => c !== undefined)
    return cohorts.flatMap((c) => [...c.workers.values()]).filter((w) => w.state === 'serving').sort((a, b) => a.slot - b.slot)
  }

  /** Every cohort that still has a live worker. */
  all (): Set<Cohort> {
    const cohorts = new Set<Cohort>()
    for (const worker of this.live.values()) if (worker.cohort !== undefined) cohorts.add(worker.cohort)
    return cohorts
  }

  /** A worker was spawned. */
  add (worker: Worker): void {
    this.live.set(worker.pid, worker)
  }

  /** Workers of a launch that failed: the launch took them down. */
  forget (worker: Worker): void {
    this.live.delete(worker.pid)
  }

  /** A worker exited: out of the live workers and of its cohort; returns its cohort. */
  remove (worker: Worker): Cohort | undefined {
    this.live.delete(worker.pid)
    const cohort = worker.cohort
    if (cohort !== undefined && cohort.workers.get(worker.slot) === worker) cohort.workers.delete(worker.slot)
    return cohort
  }

  /**
   * A serving worker stops by itself (a signal sent to it): it drains, still live, and its slot is
   * free for another worker at once, as it no longer accepts.
   */
  release (worker: Worker): void {
    worker.state = 'draining'
    const cohort = worker.cohort
    if (cohort !== undefined && cohort.workers.get(worker.slot) === worker) cohort.workers.delete(worker.slot)
  }

  /**
   * The serving cohort lost its last worker: none serves. Not while a restart into it is starting:
   * that worker joins it and serves, and the other slots' restarts join it too.
   */
  vacate (cohort: Cohort | undefined): void {
    if (cohort !== undefined && cohort === this.serving && cohort.workers.size === 0 && this.startingSlots(cohort.generation).size === 0) {
      this.serving = undefined
      this.lastEmptied = cohort.generation
    }
  }

  /**
   * The generation a restart of the whole service starts: the one that lost its last worker (a crash
   * is not a reload: it keeps its number, also after a newer one was rolled back to it), unless a
   * worker of that number still serves or drains; else a new one.
   */
  get restartGeneration (): number {
    const emptied = this.lastEmptied
    const taken = [...this.live.values()].some((worker) => worker.generation === emptied && worker.state !== 'starting')
    return emptied === undefined || taken ? this.latest + 1 : emptied
  }

  /** None serves and a whole generation is starting (a restart, a reload): it covers every slot. */
  get wholeStarting (): boolean {
    return this.serving === undefined && [...this.live.values()].some((worker) => worker.state === 'starting')
  }

  /** Slots with a worker of `generation` still starting (a restart into it, or its own start). */
  startingSlots (generation: number): Set<number> {
    const slots = new Set<number>()
    for (const worker of this.live.values()) if (worker.state === 'starting' && worker.generation === generation) slots.add(worker.slot)
    return slots
  }

  /** A ready worker joins its cohort and serves. */
  join (cohort: Cohort, worker: Worker): void {
    worker.state = 'serving'
    worker.servingSince = Date.now()
    worker.cohort = cohort
    cohort.workers.set(worker.slot, worker)
    this.instanceCount = worker.instances ?? this.instanceCount
  }

  /** `cohort` is the serving generation now; returns the one it replaced. */
  commit (cohort: Cohort): Cohort | undefined {
    const previous = this.serving
    this.serving = cohort
    this.latest = Math.max(this.latest, cohort.generation)
    return previous
  }

  /** The generation a rolling reload builds, while it does. */
  get building (): Cohort | undefined {
    return this.rolling
  }

  /** A rolling reload builds `cohort` (undefined: it is over): its workers serve beside the current ones. */
  build (cohort: Cohort | undefined): void {
    this.rolling = cohort
  }

  /** `failed` died in its probation: its predecessor serves again (the generation number stays ahead). */
  servesAgain (predecessor: Cohort, failed: Cohort): void {
    for (const w of predecessor.workers.values()) {
      w.state = 'serving'
      w.servingSince = Date.now()
      this.instanceCount = w.instances ?? this.instanceCount
    }
    this.serving = predecessor
    this.latest = Math.max(this.latest, failed.generation)
  }

  /** A worker said how many instances listen ('ready' or 'instances'). */
  learned (worker: Worker, count: unknown): void {
    if (typeof count === 'number' && Number.isSafeInteger(count) && count >= 1) worker.instances = count
    if (worker.cohort === this.serving && worker.instances !== undefined) this.instanceCount = worker.instances
  }

  /**
   * A worker hands an idle keep-alive connection to a serving one, through us: a draining one (a
   * reload), or a serving one told to shed (the balance). `pick` chooses (the least loaded); round
   * robin when it does not know.
   */
  route (from: Worker, listener: string, handle: unknown, pick?: (from: Worker, targets: Worker[]) => Worker | undefined, passed?: (ok: boolean) => void): void {
    const release = (): void => { (handle as { close?: () => void } | undefined)?.close?.() }
    const targets = this.servingWorkers().filter((w) => w !== from && w.child.connected)
    if (targets.length === 0 || typeof handle !== 'object' || handle === null) {
      release()
      return passed?.(false)
    }
    const target = pick?.(from, targets) ?? targets[this.nextTarget++ % targets.length]
    target.child.send(wrap({ type: 'connection', listener }), handle as Socket, (err) => {
      release()
      passed?.(err === null || err === undefined)
    })
  }

  /** Like HAProxy's mworker-max-reloads: the oldest draining generations beyond the limit end now. */
  limitDraining (): void {
    const draining = [...this.all()].filter((c) => c !== this.serving && [...c.workers.values()].some((w) => w.state === 'draining'))
      .sort((a, b) => a.generation - b.generation)
    for (const cohort of draining.slice(0, Math.max(0, draining.length - this.maxDraining))) {
      if (cohort.cut === true) continue
      cohort.cut = true
      for (const worker of cohort.workers.values()) {
        this.log.warn({ supervisor: 'max-draining-cut', workerPid: worker.pid, generation: worker.generation, draining: draining.length, maxDraining: this.maxDraining },
          `supervisor: ${draining.length} generations draining, more than --max-draining (${this.maxDraining}); generation ${worker.generation} (pid ${worker.pid}) cuts what it still has open`)
        send(worker.child, { type: 'cut' })
      }
    }
  }
}

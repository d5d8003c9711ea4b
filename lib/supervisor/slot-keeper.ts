// Keeps every slot of the serving generation filled: a serving worker that crashes within its
// generation's probation brings the previous generation back (probation.ts); after it, its slot
// gets a new worker after the slot's backoff (restart-policy.ts), joining the serving generation,
// or starting a whole one when none serves. After a reload, slots left empty get theirs. The
// Supervisor starts the workers (launch) and owns the cohorts' changes through Cohorts.
import type { ReloadResult } from '../types'
import type { Cohorts } from './cohorts'
import type { HeldSockets } from './held-sockets'
import type { SupervisorOptions } from './options'
import type { Probations } from './probation'
import { SlotRestarts } from './restart-policy'
import type { Cohort, Worker } from './worker'

export interface SlotKeeperHost {
  options: SupervisorOptions
  slots: number[]
  cohorts: Cohorts
  probations: Probations
  held: HeldSockets
  stopping: () => boolean
  /** A reload runs: it starts a new generation, which takes over from a crashed worker's slot. */
  reloading: () => boolean
  /** Starts workers for `slots` into `into`, or (none given) a new generation of them, numbered `generation` if given. */
  launch: (why: 'start' | 'restart', slots: number[], into?: Cohort, generation?: number) => Promise<ReloadResult>
  /** Who serves changed. */
  changed: () => void
  /** A worker of `cohort` crashed within its probation and the generation before serves again (why). */
  rolledBack: (cohort: Cohort, reason: string) => void
}

export class SlotKeeper {
  /** The per-slot backoff. */
  readonly restarts: SlotRestarts

  constructor (private readonly host: SlotKeeperHost) {
    this.restarts = new SlotRestarts(host.slots, host.options)
  }

  /** Slots of the serving generation without a worker (the first start, or one that crashed) get one, unless one is starting. */
  async fill (why: 'start' | 'restart' = 'restart'): Promise<void> {
    const { cohorts, slots } = this.host
    const cohort = cohorts.current
    if (cohort === undefined || this.host.stopping()) return
    const starting = cohorts.startingSlots(cohort.generation)
    const missing = slots.filter((slot) => !cohort.workers.has(slot) && !starting.has(slot))
    if (missing.length === 0) return
    const result = await this.host.launch(why, missing, cohort)
    if (!result.ok) for (const slot of missing) if (!cohort.workers.has(slot)) this.scheduleRestart(slot)
  }

  /**
   * A serving worker of the serving generation crashed: within the probation its generation's
   * predecessor serves again (and the rest of this generation drains away); after it, the slot
   * gets a new worker.
   */
  crashed (cohort: Cohort, worker: Worker, how: string): void {
    const { cohorts, probations, held, options } = this.host
    const resumed = probations.resume(cohort, worker, how, (w) => held.forSlot(w.slot))
    if (resumed !== undefined) {
      const { predecessor, reason } = resumed
      for (const w of cohort.workers.values()) probations.drain(w, false)
      cohorts.servesAgain(predecessor, cohort)
      options.log.error({ supervisor: 'serves-again', workerPid: worker.pid, resumedPid: [...predecessor.workers.values()][0]?.pid, generation: predecessor.generation, reason },
        `supervisor: ${reason}; generation ${predecessor.generation} (pid ${[...predecessor.workers.values()].map((w) => w.pid).join(', ')}) serves again`)
      options.status.resumed(predecessor.generation, reason)
      this.host.rolledBack(cohort, reason)
      this.host.changed()
      if (predecessor.workers.size < this.host.slots.length) void this.fill()
      return
    }
    this.restarts.crashedAfter(worker.slot, worker.servingSince === undefined ? undefined : Date.now() - worker.servingSince)
    cohorts.vacate(cohort)
    // While a reload is starting a new generation, it takes over; otherwise restart.
    if (!this.host.reloading()) this.scheduleRestart(worker.slot)
  }

  /**
   * After a reload: a serving worker that crashed while it ran was left to it (crashes meanwhile
   * schedule no restart). A reload that failed leaves its slot empty: restart it now.
   */
  afterReload (): void {
    if (this.host.stopping()) return
    const { cohorts, slots } = this.host
    const current = cohorts.current
    // A slot whose worker is starting already (a rolling reload fills the slots left empty) has one coming.
    const starting = new Set([...cohorts.workers.values()].filter((w) => w.state === 'starting').map((w) => w.slot))
    // With no generation serving, one restart starts a whole one.
    const vacant = current === undefined ? slots.slice(0, 1) : slots.filter((slot) => !current.workers.has(slot))
    for (const slot of vacant) if (!starting.has(slot)) this.scheduleRestart(slot)
  }

  /** After the slot's backoff: a new worker joins the serving generation, or (none serves) a new generation starts. */
  scheduleRestart (slot: number): void {
    if (this.host.stopping()) return
    const { cohorts, held, slots, options } = this.host
    const scheduled = this.restarts.schedule(slot, () => {
      const current = cohorts.current
      // A whole new generation is starting already (another slot's restart, a reload): it covers this slot too.
      if (cohorts.wholeStarting) return
      // The slot got a worker meanwhile, or has one starting (fill).
      if (current !== undefined && (current.workers.has(slot) || cohorts.startingSlots(current.generation).has(slot))) return
      const run = current === undefined
        // A crash is not a reload: the generation that lost its workers comes back under its own
        // number (Cohorts.restartGeneration), as a restart into a generation that still serves joins it.
        ? this.host.launch('restart', held.all().length === 0 ? [slot] : slots, undefined, cohorts.restartGeneration)
        : this.host.launch('restart', [slot], current)
      void run.then((result) => {
        const now = cohorts.current
        if (!result.ok && (now === undefined || !now.workers.has(slot))) this.scheduleRestart(slot)
        else if (result.ok) void this.fill()
      })
    })
    if (scheduled !== undefined) {
      options.log.warn({ supervisor: 'restart-scheduled', slot, delayMs: scheduled.delay, attempt: scheduled.attempt },
        `supervisor: restarting the worker${slots.length > 1 ? ` of slot ${slot}` : ''} in ${scheduled.delay} ms (attempt ${scheduled.attempt})`)
    }
  }
}

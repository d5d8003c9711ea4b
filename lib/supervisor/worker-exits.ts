// What happens when a worker ends, or says it stops by itself (a signal sent to it, not through
// us): a crash of a serving worker goes to the SlotKeeper (restart with back-off, or the probation's
// way back); a worker stopped by itself gets another in its slot, without the back-off; a worker
// of a generation that drains, or of a stopping supervisor, just leaves. Owns the exit code a stop
// reports (the serving generation's last exit). Cohorts stay Cohorts' (cohorts.ts).
import type { Cohorts } from './cohorts'
import type { SupervisorLogger } from './options'
import type { SlotKeeper } from './slot-keeper'
import type { Worker } from './worker'

/** How long after a worker says it stops by itself its slot gets another (stopped()). */
const REPLACE_STOPPED_AFTER_MS = 100

export interface WorkerExitsHost {
  log: SupervisorLogger
  cohorts: Cohorts
  keeper: SlotKeeper
  /** The supervisor stops: nothing is started or restarted. */
  stopping: () => boolean
  /** A reload runs: its new generation takes every slot over. */
  reloading: () => boolean
  /** Who serves changed. */
  changed: () => void
}

export class WorkerExits {
  private exitCode = 0

  constructor (private readonly host: WorkerExitsHost) {}

  /** The exit code of the serving generation's last worker to exit (0 while none did). */
  get lastExitCode (): number {
    return this.exitCode
  }

  /**
   * A serving worker says it stops by itself: it has stopped accepting and drains, so its slot
   * gets another worker now rather than once it exits (up to its drain timeout later, with new
   * connections waiting meanwhile). Not at once: when every process of the service gets the signal
   * together (systemd's default stop, pkill), its word can come before our own signal, and a
   * worker started then would only be called off.
   */
  stopped (worker: Worker): void {
    setTimeout(() => this.replace(worker), REPLACE_STOPPED_AFTER_MS).unref()
  }

  /** A worker exited (code, or the signal that ended it). */
  exited (worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    const { cohorts, log } = this.host
    const cohort = cohorts.remove(worker)
    const how = signal === null ? `code ${code}` : `signal ${signal}`
    const who = `generation ${worker.generation} (pid ${worker.pid})`
    const fields = { workerPid: worker.pid, generation: worker.generation, slot: worker.slot, code, signal }
    if (cohort !== undefined && cohort === cohorts.current) this.exitCode = code ?? 1
    const stopped = worker.stopping === true && !this.host.stopping()
    const logStopped = (): void => log.warn({ supervisor: 'worker-stopped', ...fields }, `supervisor: ${who} was stopped by a signal sent to it and exited with ${how}`)
    if (worker.state === 'draining' || this.host.stopping()) {
      if (stopped) logStopped()
      else log.info({ supervisor: 'worker-exited', ...fields }, `supervisor: ${who} exited with ${how}`)
      cohorts.vacate(cohort)
    } else if (worker.state === 'serving') {
      if (stopped) logStopped()
      else log.error({ supervisor: 'worker-crashed', ...fields }, `supervisor: ${who} crashed with ${how}`)
      if (cohort !== undefined && cohort === cohorts.current) {
        // Stopped, and gone before its replacement was due: it is due now.
        if (stopped) this.replace(worker)
        else this.host.keeper.crashed(cohort, worker, how)
      } else if (cohort !== undefined && cohort === cohorts.building) {
        // One of a rolling reload's new workers: the reload fails (all or nothing, rolling-reload.ts).
        cohort.crashed ??= { pid: worker.pid, reason: `${who} ${stopped ? 'was stopped' : 'crashed'} with ${how}` }
      }
    }
    // A worker still starting: the launch that started it reports the failure.
  }

  /** The slot of a worker stopped by itself gets another worker, unless we stop or it no longer serves; no back-off (no crash). */
  private replace (worker: Worker): void {
    const { cohorts } = this.host
    const cohort = worker.cohort
    if (this.host.stopping() || cohort === undefined || cohort !== cohorts.current) return
    // Still live: it drains. (One that exited already is out of its cohort.)
    if (worker.state === 'serving' && cohorts.workers.has(worker.pid)) cohorts.release(worker)
    this.host.changed()
    if (!this.host.reloading()) void this.host.keeper.fill()
  }
}

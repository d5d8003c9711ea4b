// A supervisor's shutdown: SIGTERM/SIGINT, or a first generation that could not start. Nothing new
// starts, every worker drains and exits (stop-workers.ts), and a second signal meanwhile kills them
// all, as a second signal ends a standalone generation at once (not the same one delivered twice,
// within SAME_STOP_MS). Owns whether we are stopping and whether that was forced; the workers stay
// Cohorts', the exit code of the last serving worker WorkerExits' (worker-exits.ts).
import type { EventEmitter } from 'node:events'
import { CLOSE_GRACE_MS } from '../handover'
import type { ServiceStatus } from '../service-status'
import { SAME_STOP_MS } from '../signals'
import type { SupervisorLogger } from './options'
import { stopWorkers } from './stop-workers'
import type { Worker } from './worker'

export interface ShutdownParts {
  log: SupervisorLogger
  status: ServiceStatus
  drainTimeout: number
  /** The live workers, which shrink as they exit (Cohorts'). */
  workers: ReadonlyMap<number, Worker>
  /** Says 'worker-exit' as each worker exits. */
  events: EventEmitter
  /** Stops whatever would start a worker (restarts, workers booting); resolves once a running reload has settled. */
  quiesce: () => Promise<void>
  /** No generation comes after this one: new connections are refused, not queued. */
  closeSockets: () => void
  /** The exit code of the serving generation's last worker to exit (0 if none failed). */
  exitCode: () => number
}

export class Shutdown {
  private running: Promise<number> | undefined
  /** A second signal came while stopping: every worker was killed. */
  private forced = false
  /** When the stop began (performance.now()). */
  private startedAt = 0

  constructor (private readonly parts: ShutdownParts) {}

  get active (): boolean {
    return this.running !== undefined
  }

  /**
   * Every worker drains and exits; resolves with the exit code to use. `signal` is undefined when
   * none came (`why` says what happened instead); a signal while stopping forces the stop.
   */
  begin (signal: NodeJS.Signals | undefined, why: string): Promise<number> {
    if (this.running !== undefined) {
      if (signal === undefined) return this.running
      // The same stop delivered twice (npm passing on a Ctrl-C, coreutils `timeout`) does not force it.
      if (performance.now() - this.startedAt < SAME_STOP_MS) {
        this.parts.log.info({ supervisor: 'signal-repeated', signal }, `supervisor: ${signal} again at once; the same stop, not forced`)
      } else {
        this.force(signal)
      }
      return this.running
    }
    this.startedAt = performance.now()
    this.running = this.run(signal, why)
    return this.running
  }

  private force (signal: NodeJS.Signals): void {
    if (this.forced) return
    this.forced = true
    const { log, workers } = this.parts
    log.warn({ supervisor: 'stop-forced', signal, workers: workers.size }, `supervisor: ${signal} again while stopping; killing every worker now`)
    for (const worker of workers.values()) {
      try { process.kill(worker.pid, 'SIGKILL') } catch {}
    }
  }

  private async run (signal: NodeJS.Signals | undefined, why: string): Promise<number> {
    const { log, status } = this.parts
    log.info({ supervisor: 'stopping', ...(signal === undefined ? { reason: why } : { signal }) }, `supervisor: ${why}; stopping every worker gracefully`)
    status.stopping(process.pid)
    await this.parts.quiesce()
    this.parts.closeSockets()
    const killed = await stopWorkers(this.parts.workers, this.parts.drainTimeout + CLOSE_GRACE_MS, this.parts.events, log)
    return killed > 0 || this.forced ? 1 : this.parts.exitCode()
  }
}

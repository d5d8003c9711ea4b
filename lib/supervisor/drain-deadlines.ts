// A worker told to drain ends itself: its drain is bounded (drainTimeout, the supervisor's
// --drain-timeout handed down), then its app's onClose hooks (CLOSE_GRACE_MS), then it exits. One
// whose event loop is stuck (a request handler in an endless loop) never gets there, and one of an
// older release may not know our bound: without this, such a worker lived on for ever beside the
// service, with the memory and the connections it held. Past the longest it may take, it is killed.
import { drainBoundMs } from '../handover'
import type { SupervisorLogger } from './options'
import type { Worker } from './worker'

export class DrainDeadlines {
  private readonly timers = new Map<Worker, NodeJS.Timeout>()

  constructor (
    private readonly drainTimeout: number,
    private readonly probationMs: number,
    /** The worker is still ours (a pid may be reused by another process once it exited). */
    private readonly isLive: (worker: Worker) => boolean,
    private readonly log: SupervisorLogger
  ) {}

  /** Told to drain now; with a probation it also waits for the verdict, which comes within probationMs. */
  arm (worker: Worker, probation: boolean): void {
    this.cancel(worker)
    const limitMs = drainBoundMs(this.drainTimeout, probation ? this.probationMs : 0)
    const timer = setTimeout(() => {
      this.timers.delete(worker)
      if (!this.isLive(worker) || worker.state !== 'draining') return
      this.log.error({ supervisor: 'worker-killed', workerPid: worker.pid, generation: worker.generation, waitedMs: limitMs },
        `supervisor: generation ${worker.generation} (pid ${worker.pid}) was told to drain ${limitMs} ms ago and has not exited (its event loop stuck?); killing it`)
      try { process.kill(worker.pid, 'SIGKILL') } catch {}
    }, limitMs)
    timer.unref()
    this.timers.set(worker, timer)
  }

  /** It serves again (a resume), or it is gone. */
  cancel (worker: Worker): void {
    clearTimeout(this.timers.get(worker))
    this.timers.delete(worker)
  }
}

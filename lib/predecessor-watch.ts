// Standalone, the generation before us ends itself once it has drained: its drain, the probation it
// waits out and its app's onClose hooks are each bounded, and at our commit it said by when it will
// have exited (handover.ts, drainBoundMs). One whose event loop got stuck (a request handler in an
// endless loop) never gets there, and nobody else would end it: it lived on beside the service with
// the memory and connections it held. We serve, so we kill it once it is overdue, as the supervisor
// does its workers (supervisor/drain-deadlines.ts).
//
// Our parent is that generation: while it lives, `process.ppid` is its pid, and once it exits we are
// re-parented. So a pid that another process took since is never mistaken for it.
import type { FastifyBaseLogger } from 'fastify'

/** While we wait for it to exit (our own exit waits for that): how often we look. */
const POLL_MS = 250

export interface PredecessorProcess {
  /** Our parent's pid, now. */
  parentPid: () => number
  kill: (pid: number, signal: NodeJS.Signals) => void
}

const realProcess: PredecessorProcess = {
  parentPid: () => process.ppid,
  kill: (pid, signal) => { process.kill(pid, signal) }
}

export class PredecessorWatch {
  private readonly deadline: number
  private readonly timer: NodeJS.Timeout
  private waitLogged = false

  constructor (
    private readonly pid: number,
    private readonly withinMs: number,
    private readonly log: FastifyBaseLogger,
    private readonly host: PredecessorProcess = realProcess
  ) {
    this.deadline = performance.now() + withinMs
    this.timer = setTimeout(() => this.killIfThere(), withinMs)
    // A watch must not keep us alive: our own exit waits for it through gone().
    this.timer.unref()
  }

  get alive (): boolean {
    return this.host.parentPid() === this.pid
  }

  /**
   * Resolves once the predecessor is gone: at once, when it exits, or when it is killed at its
   * deadline. Our exit waits for this: once we are gone, nobody would end a stuck one.
   */
  async gone (): Promise<void> {
    while (this.alive) {
      const left = this.deadline - performance.now()
      if (left <= 0) {
        this.killIfThere()
        return
      }
      if (!this.waitLogged) {
        this.waitLogged = true
        this.log.info({ hotReload: 'waiting-for-predecessor', predecessorPid: this.pid, waitMs: Math.round(left) },
          `hot-reload: the previous generation (pid ${this.pid}) still runs; exiting once it is gone, in ${Math.round(left)} ms at most`)
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, left)))
    }
    clearTimeout(this.timer)
  }

  private killIfThere (): void {
    clearTimeout(this.timer)
    if (!this.alive) return
    this.log.error({ hotReload: 'predecessor-killed', predecessorPid: this.pid, waitedMs: this.withinMs },
      `hot-reload: the previous generation (pid ${this.pid}) was told to drain ${this.withinMs} ms ago and has not exited (its event loop stuck?); killing it`)
    try { this.host.kill(this.pid, 'SIGKILL') } catch {}
  }
}

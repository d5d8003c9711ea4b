// When the supervisor restarts a crashed worker: after a delay that doubles with each attempt, up
// to a cap, starting afresh once a worker has served longer than the cap. The sockets stay open
// meanwhile, so clients wait in the accept queue instead of being refused.
export interface RestartTimings {
  restartDelay: number
  restartMaxDelay: number
}

export class RestartPolicy {
  private attempt = 0
  private timer: NodeJS.Timeout | undefined
  /** Restarts started so far. */
  restarts = 0

  constructor (private readonly timings: RestartTimings) {}

  get pending (): boolean {
    return this.timer !== undefined
  }

  /** A worker that crashed after serving `servedMs`: a long life resets the backoff. */
  crashedAfter (servedMs: number | undefined): void {
    if (servedMs !== undefined && servedMs > this.timings.restartMaxDelay) this.attempt = 0
  }

  /** Runs `restart` after the next delay, unless one is already scheduled. Returns the delay and attempt, or undefined. */
  schedule (restart: () => void): { delay: number, attempt: number } | undefined {
    if (this.timer !== undefined) return undefined
    const delay = Math.min(this.timings.restartDelay * 2 ** this.attempt, this.timings.restartMaxDelay)
    this.attempt++
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.restarts++
      restart()
    }, delay)
    return { delay, attempt: this.attempt }
  }

  cancel (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }
}

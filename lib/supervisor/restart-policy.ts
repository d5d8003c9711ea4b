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

/** One backoff per slot: a crash loop in one slot does not slow the others' restarts. */
export class SlotRestarts {
  private readonly policies = new Map<number, RestartPolicy>()

  constructor (slots: number[], timings: RestartTimings) {
    for (const slot of slots) this.policies.set(slot, new RestartPolicy(timings))
  }

  /** Some slot waits for its restart. */
  get pending (): boolean {
    return [...this.policies.values()].some((policy) => policy.pending)
  }

  /** Restarts started so far, every slot's. */
  get total (): number {
    return [...this.policies.values()].reduce((sum, policy) => sum + policy.restarts, 0)
  }

  /** Restarts started so far in `slot`. */
  of (slot: number): number {
    return this.policies.get(slot)?.restarts ?? 0
  }

  crashedAfter (slot: number, servedMs: number | undefined): void {
    this.policies.get(slot)?.crashedAfter(servedMs)
  }

  schedule (slot: number, restart: () => void): { delay: number, attempt: number } | undefined {
    return (this.policies.get(slot) as RestartPolicy).schedule(restart)
  }

  cancelAll (): void {
    for (const policy of this.policies.values()) policy.cancel()
  }
}

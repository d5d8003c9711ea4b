// A new generation's probation, as seen by whoever can still take the service back (the previous
// generation standalone, the supervisor supervised): it is over after `ms`, or earlier when ended;
// a failure inside it is the caller's cue to go back. The same clock for both.
export class Probation {
  private timer: NodeJS.Timeout | undefined
  private ended = false

  /** @param over called once when the probation ends without a failure (timer or `end()`) */
  constructor (ms: number, private readonly over: () => void) {
    this.timer = setTimeout(() => this.end(), ms)
  }

  get running (): boolean {
    return !this.ended
  }

  /** The new generation proved itself (or moved on): the probation is over. */
  end (): void {
    if (!this.stop()) return
    this.over()
  }

  /** The new generation failed. True when that happened within the probation (go back); false when too late. */
  failed (): boolean {
    return this.stop()
  }

  private stop (): boolean {
    if (this.ended) return false
    this.ended = true
    clearTimeout(this.timer)
    return true
  }
}

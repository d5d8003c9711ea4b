// A reload is over (its answer, the 'generation-serving' line) only once the workers told to drain
// no longer accept: a client that connects as soon as `reload` returns then reaches the new code,
// not an old worker that has yet to read its drain order. The wait is short and bounded: a worker
// of an older release never answers (its 'ready' did not offer to, so it is not waited for), and
// one that is stuck or gone holds nothing up past the limit.
import type { Worker } from './worker'

/** The longest a reload waits for the answers (they take an IPC round trip: well under a millisecond idle). */
const ACK_LIMIT_MS = 1_000

export class DrainAcks {
  /** Workers told to drain that have not answered yet: their answer resolves the promise. */
  private readonly pending = new Map<Worker, { answered: Promise<void>, resolve: () => void }>()

  /** A drain order went to this worker. */
  expect (worker: Worker): void {
    if (worker.acksDrain !== true || this.pending.has(worker)) return
    let resolve = (): void => {}
    const answered = new Promise<void>((settle) => { resolve = settle })
    this.pending.set(worker, { answered, resolve })
  }

  /** It no longer accepts: it said so, or it exited. */
  heard (worker: Worker): void {
    this.pending.get(worker)?.resolve()
    this.pending.delete(worker)
  }

  /** Resolves once each of `workers` told to drain has answered, or after ACK_LIMIT_MS. */
  async settled (workers: Iterable<Worker>): Promise<void> {
    const answers = [...workers].flatMap((worker) => this.pending.get(worker)?.answered ?? [])
    if (answers.length === 0) return
    let timer: NodeJS.Timeout | undefined
    const limit = new Promise<void>((resolve) => { timer = setTimeout(resolve, ACK_LIMIT_MS) })
    await Promise.race([Promise.all(answers), limit])
    clearTimeout(timer)
  }
}

// Keep-alive balance over the serving workers (several workers). The kernel hashes each new
// connection to a slot's socket like a random hash, and a keep-alive connection serves all its
// requests where it landed: with 10 connections per worker, one worker often holds 13 and the other
// 7 for their whole life (BENCHMARKS.md, "Accepting with several workers"). So every serving worker
// reports how many connections it holds (lib/connection-balance.ts: throttled, only on change), and
// when the most loaded holds two or more than the least, it is asked to hand half the difference
// of its idle keep-alive connections to us ('shed'); we give each to the least loaded worker, as a
// draining worker's connections are given. Nothing per request; per connection, nothing here.
import { send } from '../successor-channel'
import type { Cohorts } from './cohorts'
import type { Worker } from './worker'

/** How often a worker reports its connection count (when it changed). */
export const REPORT_EVERY_MS = 100
/**
 * After an order, the reports of the moment still count the connections on their way (the sender
 * closes its copy once sent, the receiver reports after it got them): none before this long.
 */
const SETTLE_MS = 300

export class KeepAliveBalance {
  /** Each serving worker's connections: its last report, plus what we moved since. */
  private readonly loads = new Map<number, number>()
  /** Workers asked for a report. */
  private readonly enrolled = new Set<number>()
  /** When the last order went. */
  private lastOrder = 0
  private settling: NodeJS.Timeout | undefined

  constructor (private readonly cohorts: Cohorts, private readonly slots: number) {}

  /** Whoever serves changed: every serving worker not asked yet reports from now on. */
  update (): void {
    if (this.slots < 2) return
    for (const worker of this.cohorts.servingWorkers()) {
      if (this.enrolled.has(worker.pid) || !worker.child.connected) continue
      this.enrolled.add(worker.pid)
      send(worker.child, { type: 'balance', every: REPORT_EVERY_MS })
    }
  }

  /** The connections a worker holds, as far as we know (its last report, and what we moved since). */
  connectionsOf (pid: number): number | undefined {
    return this.loads.get(pid)
  }

  /** A worker exited. */
  forget (pid: number): void {
    this.loads.delete(pid)
    this.enrolled.delete(pid)
  }

  /** A worker's report: maybe the most loaded worker sheds some. */
  report (worker: Worker, connections: unknown): void {
    if (typeof connections !== 'number' || !Number.isSafeInteger(connections) || connections < 0) return
    this.loads.set(worker.pid, connections)
    this.rebalance()
  }

  /** Where a handed-over connection goes: the least loaded serving worker but `from`, counted as one more. */
  target (from: Worker, candidates: Worker[]): Worker | undefined {
    const known = candidates.filter((w) => w !== from && this.loads.has(w.pid))
    if (known.length === 0) return undefined
    const least = known.reduce((a, b) => (this.loads.get(b.pid) as number) < (this.loads.get(a.pid) as number) ? b : a)
    this.loads.set(least.pid, (this.loads.get(least.pid) as number) + 1)
    const own = this.loads.get(from.pid)
    if (own !== undefined && own > 0) this.loads.set(from.pid, own - 1)
    return least
  }

  private rebalance (): void {
    const wait = this.lastOrder + SETTLE_MS - Date.now()
    if (wait > 0) {
      // Looked at again once settled, even if no report comes meanwhile.
      this.settling ??= setTimeout(() => { this.settling = undefined; this.rebalance() }, wait).unref()
      return
    }
    const serving = this.cohorts.servingWorkers().filter((w) => this.loads.has(w.pid) && w.child.connected)
    if (serving.length < 2) return
    const load = (w: Worker): number => this.loads.get(w.pid) as number
    const most = serving.reduce((a, b) => load(b) > load(a) ? b : a)
    const least = serving.reduce((a, b) => load(b) < load(a) ? b : a)
    const count = Math.floor((load(most) - load(least)) / 2)
    if (count < 1) return
    this.lastOrder = Date.now()
    send(most.child, { type: 'shed', count })
  }
}

// A worker's side of the supervisor's keep-alive balance (several workers). The kernel spreads
// new connections over the workers' sockets like a random hash, and keep-alive connections stay
// where they landed, so one worker may hold far more than its share for the connections' whole
// life. Once the supervisor asks ('balance'), we tell it how many connections we hold, at most
// every `every` ms and only when the number changed; when we hold clearly more than our share it
// asks us to move some ('shed'), and we hand that many idle ones (between requests, nothing of a
// next request read) to it, as a drain hands them to the next generation. Nothing per request.
import type { ConnectionOutlet } from './connection-handoff'
import type { Instance } from './instance'

export interface BalanceParts {
  instances: () => Instance[]
  /** Where moved connections go (the supervisor), or undefined while we cannot move any. */
  outlet: () => ConnectionOutlet | undefined
  report: (connections: number) => void
}

export class ConnectionBalance {
  private timer: NodeJS.Timeout | undefined
  private reported = -1

  constructor (private readonly parts: BalanceParts) {}

  /** The supervisor asks for our connection count every `every` ms (when it changed). */
  start (every: number): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.reported = -1
    this.timer = setInterval(() => this.tick(), Math.max(20, every))
    this.timer.unref()
    this.tick()
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /** Moves up to `count` idle connections to the supervisor, which gives them to the least loaded worker. */
  shed (count: number): number {
    const outlet = this.parts.outlet()
    if (outlet === undefined || this.timer === undefined) return 0
    let moved = 0
    for (const instance of this.parts.instances()) {
      if (moved >= count) break
      moved += instance.shed(count - moved, outlet)
    }
    // Counted anew at the next tick (the moved ones close once sent), said even if unchanged.
    this.reported = -1
    return moved
  }

  private tick (): void {
    const open = this.parts.instances().reduce((sum, instance) => sum + instance.balancedConnections, 0)
    if (open === this.reported) return
    this.reported = open
    this.parts.report(open)
  }
}

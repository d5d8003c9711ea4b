// A generation's state machine: the only place its state changes, its events are emitted and the
// process is ended (through the injected exit). No I/O of its own, so every rule here has a direct
// unit test; the generation's step modules only return values, and its two halves (Generation and
// Handover) act through this.
//
//   starting ──▶ serving ◀──▶ reloading
//      │            │  ▲          │
//      └────────────┴──┼──────────┴──▶ draining ──▶ closed
//                      └── resumed ◀──────┘
import type { EventEmitter } from 'node:events'
import type { HotReloadEvents, HotReloadState } from './types'

/** Where events go: the public `fastify.hotReload` of each instance (an EventEmitter, or an Audience of them). */
export interface EventSink {
  emit: <E extends keyof HotReloadEvents>(event: E, ...args: HotReloadEvents[E]) => unknown
  listenerCount: (event: keyof HotReloadEvents) => number
}

const NEXT: Record<HotReloadState, readonly HotReloadState[]> = {
  starting: ['serving', 'draining', 'closed'],
  serving: ['reloading', 'draining', 'closed'],
  reloading: ['serving', 'draining', 'closed'],
  // A drain whose successor died during its probation serves again.
  draining: ['serving', 'closed'],
  closed: []
}

export class Lifecycle {
  private current: HotReloadState = 'starting'
  /** Confirmed as the serving generation: the first one at once, a successor once its parent committed it. */
  private confirmedFlag: boolean
  /** Readiness checks running (a successor answers /health as if serving, to pass them): one per instance. */
  private checks = 0
  /** SIGTERM/SIGINT (or the supervisor's loss) asked for a shutdown: no going back. */
  private stoppingFlag = false

  /**
   * @param confirmed true for a first generation (no predecessor to confirm it)
   * @param events where events go: the public `fastify.hotReload` of each instance
   * @param exit ends the process
   */
  constructor (confirmed: boolean, private readonly events: EventSink, private readonly exit: (code: number) => void) {
    this.confirmedFlag = confirmed
  }

  emit<E extends keyof HotReloadEvents> (event: E, ...args: HotReloadEvents[E]): void {
    this.events.emit(event, ...args)
  }

  /** To one instance's facade only: an instance that joins a generation already serving is told so. */
  emitTo<E extends keyof HotReloadEvents> (events: EventEmitter<HotReloadEvents>, event: E, ...args: HotReloadEvents[E]): void {
    (events.emit as (event: E, ...args: HotReloadEvents[E]) => boolean)(event, ...args)
  }

  listenerCount (event: keyof HotReloadEvents): number {
    return this.events.listenerCount(event)
  }

  /** The one way out of the process. */
  end (code: number): void {
    this.exit(code)
  }

  get state (): HotReloadState { return this.current }
  get confirmed (): boolean { return this.confirmedFlag }
  get stopping (): boolean { return this.stoppingFlag }
  /** Draining or closed: on its way out (unless a drain resumes). */
  get leaving (): boolean { return this.current === 'draining' || this.current === 'closed' }

  /** Moves to `next`; false (and no change) when that is no move from here. */
  to (next: HotReloadState): boolean {
    const previous = this.current
    if (previous === next || !NEXT[previous].includes(next)) return false
    this.current = next
    this.emit('state', next, previous)
    return true
  }

  confirm (): void { this.confirmedFlag = true }
  stop (): void { this.stoppingFlag = true }
  /** An instance's readiness check starts (true) or ends (false). */
  checking (running: boolean): void { this.checks = Math.max(0, this.checks + (running ? 1 : -1)) }

  /** Not yet serving: starting, or a successor that took over but is not yet committed (and not stopping). */
  get beforeServing (): boolean {
    if (this.stoppingFlag) return false
    return this.current === 'starting' || (this.current === 'serving' && !this.confirmedFlag)
  }

  /** Why this generation may not start a reload now, or null when it may. */
  reloadRefusal (): string | null {
    if (!this.confirmedFlag) return 'this generation is not yet confirmed by its predecessor'
    if (this.current !== 'serving' || this.stoppingFlag) return `this generation is ${this.current}`
    return null
  }

  /** Why readiness must say 503 (before pressure is asked), or null while this generation serves. */
  notReadyReason (): string | null {
    const serving = this.current === 'serving' || this.current === 'reloading' || (this.current === 'starting' && this.checks > 0)
    return serving ? null : this.current
  }
}

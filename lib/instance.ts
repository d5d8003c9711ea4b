// One Fastify instance of the process (a process may have several: a public app and an admin
// server, say): its listening sockets, its connections and their drain, the connections handed to
// or from it, and its own readiness check. The generation (generation.ts) owns the process-wide
// life; this owns what belongs to one instance, and changes no state of the generation.
import type { ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import { ConnectionHandoff, drainRampMs, movesDeadlineMs, readyToMove, type ConnectionOutlet } from './connection-handoff'
import { ConnectionTracker } from './connection-tracker'
import { Drain, type DrainCutCause } from './drain'
import type { HotReloadFacade } from './facade'
import { probeUrl } from './health'
import { Http2Sessions } from './http2-sessions'
import type { Lifecycle } from './lifecycle'
import { Listeners } from './listeners'
import { LongLivedConnections } from './long-lived'
import type { ResolvedOptions } from './options'
import { waitUntilReady } from './readiness'
import { SlotCovers } from './slot-cover'
import type { InheritedPool } from './socket-adoption'

export interface InstanceParts {
  app: FastifyInstance
  /** This registration's options: its routes and its drain's timings. */
  options: ResolvedOptions
  /** Its `fastify.hotReload`. */
  facade: HotReloadFacade
  /** The process's inherited sockets. */
  pool: InheritedPool
  lifecycle: Lifecycle
  /** A successor checks each instance's readiness before the instance accepts; a first generation does not. */
  checkReadiness: boolean
  /** Why this instance's /health must say 503, or null (the generation's state and this instance's pressure). */
  notReadyReason: () => string | null
  /** A successor's app called listen(): its readiness check starts now. */
  listenCalled: () => void
  /** Its readiness check can never pass, and why (a hook of the app answers the readiness route). */
  readinessRefused: (reason: string) => void
  /** Its readiness check did not pass yet, and why (said again when that changes). */
  notReadyYet: (reason: string) => void
}

export class Instance {
  readonly app: FastifyInstance
  readonly options: ResolvedOptions
  readonly facade: HotReloadFacade
  readonly listeners: Listeners
  private readonly tracker = new ConnectionTracker()
  private readonly drainer: Drain
  /** Where this instance's drain moves connections (the next generation), while it drains for a reload. */
  private drainOutlet: ConnectionOutlet | undefined
  private readonly handoff: ConnectionHandoff
  /** Other slots' sockets we accept on while those slots have no worker (supervised). */
  private readonly covers: SlotCovers
  private readinessCheck: Promise<boolean> | undefined
  /** Its readiness check passed (a successor): it answers ready while the process waits for its other instances. */
  private checked = false

  constructor (private readonly parts: InstanceParts) {
    const { app, options, facade, pool } = parts
    this.app = app
    this.options = options
    this.facade = facade
    const http2Sessions = new Http2Sessions()
    // A successor runs its readiness check before it adopts (accepts on) the shared sockets: a
    // release that is not ready never takes a connection.
    this.listeners = new Listeners(app, pool, (server) => {
      this.tracker.watch(server as Parameters<ConnectionTracker['watch']>[0])
      http2Sessions.watch(server)
    }, () => this.passReadinessCheck())
    this.handoff = new ConnectionHandoff(this.tracker, this.listeners, app.log)
    this.covers = new SlotCovers(app.log)
    const longLived = new LongLivedConnections(app, options.closeSpread, facade, http2Sessions)
    this.drainer = new Drain(this.tracker, http2Sessions, longLived, () => this.listeners.all, options, app.log)
  }

  /** True once its readiness check passed (always, in a first generation). */
  get ready (): boolean {
    return !this.parts.checkReadiness || this.checked
  }

  /** Resolves true once its own readiness check passed (successors only), false when taken down meanwhile. */
  passReadinessCheck (): Promise<boolean> {
    if (!this.parts.checkReadiness) return Promise.resolve(true)
    const { lifecycle, app, options } = this.parts
    // The parent hears of it before the check (the parent link says it once per process): it gives
    // back the CPU priority the boot ran at (boot-priority.ts), and a supervisor boots the next
    // wave of workers meanwhile.
    this.parts.listenCalled()
    this.readinessCheck ??= (async () => {
      lifecycle.checking(true)
      try {
        const verdict = await waitUntilReady({
          app,
          healthPath: options.healthPath === false ? false : probeUrl(app, options.healthPath),
          notReadyReason: this.parts.notReadyReason,
          givenUp: () => lifecycle.leaving,
          notYet: this.parts.notReadyYet
        })
        this.checked = verdict.ready
        if (!verdict.ready && verdict.refused !== undefined) this.parts.readinessRefused(verdict.refused)
        return this.checked
      } finally {
        lifecycle.checking(false)
      }
    })()
    return this.readinessCheck
  }

  // ---- drain -------------------------------------------------------------------------------

  stopAccepting (removeUnixPaths: boolean): void {
    this.covers.closeAll()
    this.listeners.stopAccepting(removeUnixPaths)
  }

  /** Accept on a copy of another slot's socket for `listener` too; false when we do not listen there. */
  cover (slot: number, listener: string, handle: object): boolean {
    const server = this.listeners.serverFor(listener)
    if (server === undefined) return false
    this.covers.cover(slot, listener, handle, server)
    return true
  }

  /** That slot serves again: our copies of its sockets close. */
  uncover (slot: number): void {
    this.covers.uncover(slot)
  }

  /** Resolves once no connection is left here (or the drain was stopped). */
  drain (outlet: ConnectionOutlet | undefined, atDeadline: () => void, why: 'reload' | 'shutdown', rampMs?: number): Promise<void> {
    this.drainOutlet = outlet
    if (outlet !== undefined) {
      const ramp = drainRampMs(rampMs, this.options)
      this.handoff.beginRamp(this.tracker.openCount, ramp, movesDeadlineMs(ramp, this.options.drainTimeout))
    }
    return this.drainer.run(
      outlet === undefined ? undefined : (socket, server) => this.handoff.send(socket, server, outlet),
      () => this.handoff.settled(),
      atDeadline,
      why,
      readyToMove,
      // One move at a time (connection-handoff.ts): the others are served here until their turn.
      () => this.handoff.hasRoom
    )
  }

  /** Ends the drain: idle connections still waiting to move go at once, the rest is cut (see Drain.cutNow). */
  cutNow (why: string, cause: DrainCutCause): void {
    this.handoff.rush()
    this.tracker.offerIdle()
    this.drainer.cutNow(why, cause)
  }

  /** The generation serves again: this drain stops where it is. */
  stopDrain (): void {
    this.drainOutlet = undefined
    this.handoff.endRamp()
    this.drainer.stop()
  }

  get cutConnections (): number { return this.drainer.cutConnections }
  /** During a drain, the connection of this response closes after it (see ConnectionTracker). */
  closeConnectionAfter (response: ServerResponse): void {
    this.tracker.closeConnectionAfter(response)
  }

  /** Connections a drain still waits for. */
  get drainingConnections (): number { return this.tracker.isDraining ? this.tracker.size : 0 }
  get movedConnections (): number { return this.tracker.movedConnections }

  /** Open connections the supervisor's balance weighs (keep-alive HTTP/1: not long-lived, not TLS). */
  get balancedConnections (): number {
    return this.tracker.balancedCount
  }

  /**
   * Moves up to `max` idle keep-alive connections through `outlet` (the supervisor's balance);
   * returns how many went. One that cannot go after all just stays here, served as before.
   */
  shed (max: number, outlet: ConnectionOutlet): number {
    let moved = 0
    for (const { socket, server } of this.tracker.movable(max, readyToMove)) {
      if (this.handoff.send(socket, server, outlet, () => {})) moved++
    }
    return moved
  }

  /** The outlet died: the handoffs still queued on it stay here. */
  failHandoffs (reason: string): void {
    this.handoff.failAll(reason)
  }

  /** True when one of our servers listens on `listener` (a listener key), or did until our drain. */
  servesOn (listener: string): boolean {
    return this.listeners.serverFor(listener) !== undefined
  }

  /**
   * A connection the previous generation handed over (for one of our listeners, or closed with a
   * warning). Handed to us while we drain ourselves (two reloads close together), it goes on to the
   * generation after us unread, instead of being served here on the older code first.
   */
  receive (listener: string, handle: object): void {
    const outlet = this.drainOutlet
    if (outlet?.open === true) this.handoff.passOn(listener, handle, outlet)
    else this.handoff.receive(listener, handle)
  }
}

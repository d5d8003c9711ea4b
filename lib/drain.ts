// A generation's drain, once it stops accepting: HTTP/2 sessions get GOAWAY, in-flight requests
// finish (later responses say `Connection: close`), idle keep-alive connections move to the next
// generation or close once idle, WebSockets, event streams and other upgrades are closed over the
// closeSpread window, and past the deadline what is left is cut and counted.
import type { Server as HttpServer } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { ConnectionTracker } from './connection-tracker'
import { readyToMove } from './connection-handoff'
import type { Http2Sessions } from './http2-sessions'
import type { LongLivedConnections } from './long-lived'

export type MoveConnection = (socket: Socket, server: HttpServer) => boolean
/** False while a connection may not move yet: it is served here meanwhile and offered again later. */
export type MayMove = (socket: Socket, server: HttpServer) => boolean
/** Why a drain was cut (the `cause` field of the 'drain-cut' log line). */
export type DrainCutCause = 'drain-timeout' | 'max-draining' | 'supervisor-max-draining'

export interface DrainTimings {
  drainTimeout: number
  idleGrace: number
}

/**
 * When too many generations drain, the oldest is cut, but its requests in flight get this long to
 * end first (their connections then move, or close): what the cut is for is a request that never
 * ends, not the ordinary ones of connections still waiting for their turn to move. At the drain's
 * deadline there is no such grace: the time is up.
 */
const CUT_GRACE_MS = 500

export class Drain {
  private cut = 0
  private active = false
  private deadline: NodeJS.Timeout | undefined
  private graceTimer: NodeJS.Timeout | undefined

  constructor (
    private readonly tracker: ConnectionTracker,
    private readonly http2Sessions: Http2Sessions,
    private readonly longLived: LongLivedConnections,
    /** The servers whose long-lived connections are closed. */
    private readonly servers: () => Iterable<object>,
    private readonly timings: DrainTimings,
    private readonly log: FastifyBaseLogger
  ) {}

  /** Connections cut so far (at the deadline, or when told to end now). */
  get cutConnections (): number {
    return this.cut
  }

  /**
   * Resolves once no connection is left here, or the drain was stopped (resume).
   * @param move hands an idle connection over (connectionHandoff), or undefined to close them here
   * @param handoffsSettled resolves once every handoff on its way has landed or come back
   * @param atDeadline called when drainTimeout is reached
   * @param why what the closing long-lived connections are told
   * @param mayMove whether a connection may move now (by default: once its parser is between requests)
   * @param hasRoom whether a move may start now (moves go one at a time: connection-handoff.ts)
   */
  async run (move: MoveConnection | undefined, handoffsSettled: () => Promise<void>, atDeadline: () => void, why: 'reload' | 'shutdown', mayMove: MayMove = readyToMove, hasRoom?: () => boolean): Promise<void> {
    this.active = true
    void this.http2Sessions.goAway(this.timings.drainTimeout)
    this.longLived.drain(this.timings.drainTimeout, this.servers(), why)
    this.deadline = setTimeout(atDeadline, this.timings.drainTimeout)
    try {
      // A connection whose handoff failed comes back to the tracker and drains here.
      do {
        await this.tracker.drain(this.timings.idleGrace, move, move === undefined ? undefined : mayMove, move === undefined ? undefined : hasRoom)
        await handoffsSettled()
      } while (this.tracker.size > 0 && this.active)
    } finally {
      this.stopDeadline()
    }
  }

  /** Ends the drain: the connections still open are cut and counted (after CUT_GRACE_MS, but at the deadline). */
  cutNow (why: string, cause: DrainCutCause): void {
    // Before the grace: a WebSocket's close frame (1001), an event stream's end, go out first.
    if (this.active) this.longLived.closeNow(this.servers())
    if (cause !== 'drain-timeout' && this.active && this.tracker.size > 0) {
      this.graceTimer ??= setTimeout(() => this.cutOpen(why, cause), CUT_GRACE_MS)
      return
    }
    this.cutOpen(why, cause)
  }

  private cutOpen (why: string, cause: DrainCutCause): void {
    // The deadline may come during a grace: one cut, not two.
    if (this.graceTimer !== undefined) clearTimeout(this.graceTimer)
    this.graceTimer = undefined
    const cut = this.tracker.cutAll()
    this.cut += cut
    this.log.warn({ hotReload: 'drain-cut', cause, cutConnections: cut, drainTimeout: this.timings.drainTimeout }, `hot-reload: ${why}; closed ${cut} connection(s) still open`)
  }

  stopDeadline (): void {
    if (this.deadline !== undefined) clearTimeout(this.deadline)
    if (this.graceTimer !== undefined) clearTimeout(this.graceTimer)
    this.deadline = undefined
    this.graceTimer = undefined
  }

  /** The generation serves again: the drain stops where it is, nothing more is closed. */
  stop (): void {
    this.active = false
    this.stopDeadline()
    this.tracker.resume()
    this.longLived.stop()
    this.cut = 0
  }
}

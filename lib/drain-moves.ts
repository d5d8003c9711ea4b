// During a drain with a connection handoff: which of the tracker's connections move to the next
// generation, and when. A connection moves only while idle, only when the handoff has room for one
// more (one move at a time, spread over a ramp: connection-handoff.ts), and one the handoff refuses
// stays and drains here the ordinary way. Owns the drain's handoff functions and its count of moves;
// the connections themselves are the tracker's (it forgets a moved one).
import type { Server as HttpServer } from 'node:http'
import type { Socket } from 'node:net'
import { closeAfter, type ConnectionState } from './connection-state'

/** Moves an idle connection to the next generation; false when it cannot (it then drains here). */
export type Handoff = (socket: Socket, server: HttpServer) => boolean
/** False while a connection that looks idle may not move yet (its next request has begun arriving). */
export type ReadyToMove = (socket: Socket, server: HttpServer) => boolean

export class DrainMoves {
  private handoff: Handoff | undefined
  private readyToMove: ReadyToMove | undefined
  /** False while another move has the turn. */
  private hasRoom: (() => boolean) | undefined
  /** The moves are over (end): a busy connection still here closes after its response. */
  private over = false
  private count = 0

  constructor (
    /** The tracker's drain states; owned and changed by the tracker. */
    private readonly connections: ReadonlyMap<Socket, ConnectionState>,
    /** The tracker lets go of a connection that moved. */
    private readonly forget: (socket: Socket) => void
  ) {}

  /** A drain starts; without a handoff nothing moves and every connection drains here. */
  begin (handoff?: Handoff, readyToMove?: ReadyToMove, hasRoom?: () => boolean): void {
    this.handoff = handoff
    this.readyToMove = readyToMove
    this.hasRoom = hasRoom
    this.over = false
  }

  /** The drain ended without closing anything (the generation serves again). */
  stop (): void {
    this.handoff = undefined
    this.over = false
    this.count = 0
  }

  /** Connections handed to the next generation during this drain. */
  get moved (): number {
    return this.count
  }

  staysHere (state: ConnectionState): boolean {
    return this.handoff === undefined || state.stays || state.upgraded
  }

  /** A new request on a connection: one that missed its turn stays here once the moves are over. */
  requestArrived (state: ConnectionState): void {
    if (this.over && state.missedTurn) state.stays = true
  }

  /** A connection the handoff gave back (its move failed after all): it drains here. */
  kept (): void {
    this.count--
  }

  tryHandoff (socket: Socket, state: ConnectionState): void {
    if (this.handoff === undefined || this.staysHere(state) || !this.connections.has(socket)) return
    // Not yet: it is tried again after its next response, or at the next sweep.
    if (this.hasRoom !== undefined && !this.hasRoom()) {
      // Another move has the turn: served here meanwhile, and closed after a response once the moves are over (end).
      state.missedTurn = true
      return
    }
    if (this.readyToMove !== undefined && !this.readyToMove(socket, state.server)) return
    if (this.handoff(socket, state.server)) {
      this.count++
      this.forget(socket)
      return
    }
    // It drains here after all.
    this.keepHere(state)
  }

  /** The connection drains here, not moving: from now on its responses close it. */
  keepHere (state: ConnectionState): void {
    state.stays = true
    for (const response of state.responses) closeAfter(response, state)
  }

  /** Offers every idle connection to the handoff again (it has room for one more now). */
  offerIdle (): void {
    if (this.handoff === undefined) return
    for (const [socket, state] of [...this.connections]) {
      if (state.busy === 0 && !socket.destroyed) this.tryHandoff(socket, state)
    }
  }

  /**
   * The drain's moves are over (connection-handoff.ts movesDeadlineMs). A connection still here
   * that missed its turn (its responses ended while another move had it, and its client sent the
   * next request at once) would be served here, on the old code, until the deadline cut it with a
   * request in flight: from now on it closes after its response, and its client reconnects to the
   * new generation. Idle ones still move, and so does one busy with its first response since the drain began.
   */
  end (): void {
    if (this.handoff === undefined) return
    this.over = true
    for (const state of this.connections.values()) {
      if (state.busy === 0 || !state.missedTurn || this.staysHere(state)) continue
      const unsent = [...state.responses].filter((response) => !response.headersSent)
      // Its response under way said keep-alive already: it may still move once that ends.
      if (unsent.length === 0) continue
      state.stays = true
      for (const response of unsent) closeAfter(response, state)
    }
  }
}

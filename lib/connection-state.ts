// What a drain knows of one connection, and the one rule for ending it after a response
// (`Connection: close` on the right response only). Owned by ConnectionTracker; DrainMoves and
// DrainSweep read it.
import type { Server as HttpServer, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { ConnectionTracker } from './connection-tracker'
import { currentResponse, requestsQueuedBehind } from './node-internals'

/** @internal what a drain knows of one connection. */
export interface ConnectionState {
  /** Requests received and not yet answered (of those this drain knows about). */
  busy: number
  /** Responses not yet started, which still can get `Connection: close`. */
  responses: Set<ServerResponse>
  idleSince: number
  bytesReadWhenIdle: number
  /** WebSocket and other upgrades, and HTTP/2 sessions (they end by GOAWAY): never idle from here. */
  upgraded: boolean
  server: HttpServer
  socket: Socket
  tracker: ConnectionTracker
  /** The handoff was refused for this connection: it drains here the ordinary way. */
  stays: boolean
  /** It could have moved once, but another move had the turn. */
  missedTurn: boolean
  /** The response this drain gave `Connection: close` (the connection's last parsed request's). */
  closing: ServerResponse | undefined
}

export function newConnectionState (socket: Socket, server: HttpServer, tracker: ConnectionTracker, upgraded: boolean): ConnectionState {
  return { busy: 0, responses: new Set(), idleSince: Date.now(), bytesReadWhenIdle: socket.bytesRead, upgraded, server, socket, tracker, stays: false, missedTurn: false, closing: undefined }
}

/** The connection is idle from now on (its last response has ended, or it has just been kept). */
export function markIdle (state: ConnectionState): void {
  state.idleSince = Date.now()
  state.bytesReadWhenIdle = state.socket.bytesRead
}

/**
 * `Connection: close` on the response of the connection's last parsed request, once it is the one
 * being written, and on no earlier one: Node ends the connection after a response that says so, and
 * would drop the responses of requests pipelined behind it (handlers already ran: a POST done, its
 * answer lost). An earlier response that said so before another request arrived says keep-alive
 * again while it can; a connection whose last response went out unmarked is closed by the idle sweep.
 */
export function closeAfter (response: ServerResponse, state: ConnectionState): void {
  // A request arrived behind the response marked so far: that one must not end the connection.
  const earlier = state.closing
  if (earlier !== undefined && earlier !== response && !earlier.headersSent) {
    earlier.removeHeader('connection')
    state.closing = undefined
  }
  if (response.headersSent || requestsQueuedBehind(state.socket, response)) return
  // Only the response being written now. One still queued may be written (its head fixed) before
  // its turn, and a request arriving meanwhile would queue behind a response that ends the connection.
  const current = currentResponse(state.socket)
  if (current !== null && current !== response) return
  response.setHeader('connection', 'close')
  state.closing = response
}

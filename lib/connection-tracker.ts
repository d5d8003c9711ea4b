// Knows every connection of the servers it watches and, during a drain, whether each is busy, so
// that a drain can finish in-flight requests, answer later ones with `Connection: close`, and close
// a keep-alive connection only once it has been idle for a while (closing one that just went idle
// races with the client's next request: the ECONNRESET that a plain server.close() gives).
//
// Outside a drain it does nothing per request: it keeps the set of open connections (one entry and
// one shared 'close' listener per connection) and nothing else. When a drain starts it asks Node
// what it already knows about each connection (lib/node-internals.ts: the response it is writing,
// how long it has been idle) and from then on follows every request and response itself.
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import { closeAfter, type ConnectionState, markIdle, newConnectionState } from './connection-state'
import { DrainMoves, type Handoff, type ReadyToMove } from './drain-moves'
import { DrainSweep } from './drain-sweep'
import { checkConnectionInternals, currentResponse, hasHttp1Parser, http2SessionConnection, idleForMs, isEncrypted, isEventStream, timerClock } from './node-internals'

/**
 * The connection each followed response belongs to (undefined once it closed). Kept beside the
 * responses, not on them: a property added to a ServerResponse when a drain starts gives every
 * response from then on another hidden class, and V8 then throws away its optimized code for the
 * request path (Node's and Fastify's) in the middle of the drain.
 */
const followed = new WeakMap<ServerResponse, ConnectionState | undefined>()
type RequestListener = (request: IncomingMessage, response: ServerResponse) => void

export class ConnectionTracker {
  /** Every open connection of the watched servers (the per-connection work, drain or not). */
  private readonly open = new Map<Socket, HttpServer>()
  /** Connections upgraded while no drain ran. */
  private readonly upgradedSockets = new WeakSet<Socket>()
  /** During a drain only: what the drain knows of each connection it still waits for. */
  private readonly connections = new Map<Socket, ConnectionState>()
  /** Per watched server, its 'request' listener: attached while a drain runs, and only then. */
  private readonly requestListeners = new Map<HttpServer, RequestListener>()
  private draining = false
  /** Which connections move to the next generation during a drain (lib/drain-moves.ts). */
  private readonly moves: DrainMoves
  /** The idle sweep while a drain runs (lib/drain-sweep.ts). */
  private readonly sweeper: DrainSweep
  private emptied: (() => void) | undefined
  // One function for every connection's 'close' (`this` is the socket): no closure per connection.
  private readonly onSocketClose: (this: Socket) => void

  constructor () {
    const tracker = this
    this.onSocketClose = function (this: Socket) { tracker.socketClosed(this) }
    this.moves = new DrainMoves(this.connections, (socket) => this.forget(socket))
    this.sweeper = new DrainSweep(this.connections, (state) => this.moves.staysHere(state), (socket, state) => this.moves.tryHandoff(socket, state))
  }

  get size (): number {
    return this.draining ? this.connections.size : this.open.size
  }

  get isDraining (): boolean {
    return this.draining
  }

  /** Connections handed to the next generation during the drain. */
  get movedConnections (): number {
    return this.moves.moved
  }

  watch (server: HttpServer): void {
    if (this.requestListeners.has(server)) return
    // At registration: a Node whose internals differ stops the app now, not in the middle of a drain.
    checkConnectionInternals()
    this.requestListeners.set(server, (request, response) => this.onRequest(request, response, server))
    // Over TLS the HTTP server's socket is the TLSSocket, not the TCP one 'connection' gives: its
    // requests, parser and timers are there, and the drain must know it busy by them.
    const connectionEvent = (server as unknown) instanceof TlsServer ? 'secureConnection' : 'connection'
    server.prependListener(connectionEvent, (socket: Socket) => this.onConnection(socket, server))
    server.prependListener('upgrade', (request: IncomingMessage) => this.onUpgrade(request.socket, server))
    // An HTTP/2 connection may carry long streams while its client sends nothing: it is never idle
    // here, like an upgrade. Its streams are not counted (see Http2Sessions); it ends with its session.
    server.on('session', (session: object) => {
      const socket = http2SessionConnection(session)
      if (socket !== null && this.open.has(socket)) this.onUpgrade(socket, server)
    })
    if (this.draining) this.listenForRequests(server)
  }

  private onConnection (socket: Socket, server: HttpServer): void {
    this.open.set(socket, server)
    socket.on('close', this.onSocketClose)
    if (this.draining) this.stateOf(socket, server)
  }

  private onUpgrade (socket: Socket, server: HttpServer): void {
    if (this.draining) this.stateOf(socket, server).upgraded = true
    else this.upgradedSockets.add(socket)
  }

  private socketClosed (socket: Socket): void {
    this.open.delete(socket)
    this.forget(socket)
  }

  /** The drain no longer waits for this connection (closed or moved). */
  private forget (socket: Socket): void {
    if (this.connections.delete(socket) && this.connections.size === 0) this.emptied?.()
  }

  private listenForRequests (server: HttpServer): void {
    const listener = this.requestListeners.get(server) as RequestListener
    // First, so that `Connection: close` is set before the app's handler answers.
    if (!server.listeners('request').includes(listener)) server.prependListener('request', listener)
  }

  /** The drain's state of a connection, made when it first needs one. */
  private stateOf (socket: Socket, server: HttpServer): ConnectionState {
    let state = this.connections.get(socket)
    if (state === undefined) {
      state = newConnectionState(socket, server, this, this.upgradedSockets.has(socket))
      this.connections.set(socket, state)
      // A socket the 'connection' event never showed us (an HTTP/2 request's socket proxy, say).
      if (!this.open.has(socket)) socket.once('close', () => this.forget(socket))
    }
    return state
  }

  /** A drain starts: what Node knows of a connection that no request of the drain has shown yet. */
  private stateAtDrainStart (socket: Socket, server: HttpServer, now: number, clock: number): ConnectionState {
    const state = this.stateOf(socket, server)
    const idleFor = idleForMs(socket, clock)
    if (idleFor !== null) state.idleSince = now - idleFor
    const response = currentResponse(socket)
    if (response !== null) this.follow(response, state)
    return state
  }

  private onRequest (request: IncomingMessage, response: ServerResponse, server: HttpServer): void {
    this.follow(response, this.stateOf(request.socket, server))
  }

  /** Counts a response as in flight on its connection until it closes; marks it if it must close. */
  private follow (response: ServerResponse, state: ConnectionState): void {
    const listening = followed.has(response)
    followed.set(response, state)
    state.busy++
    this.moves.requestArrived(state)
    if (this.moves.staysHere(state)) {
      closeAfter(response, state)
    } else {
      state.responses.add(response)
    }
    // One shared listener, no closure per response (a response followed by an earlier drain has it).
    if (!listening) response.on('close', onResponseClose)
  }

  /** @internal called by onResponseClose */
  responseClosed (response: ServerResponse, state: ConnectionState): void {
    followed.set(response, undefined)
    // A state of a drain that has ended (resumed), or of a connection gone or moved: nothing to do.
    if (this.connections.get(state.socket) !== state) return
    const socket = state.socket
    state.busy--
    state.responses.delete(response)
    markIdle(state)
    // A pipelined response queued before the drain started is the connection's current one now.
    // (Only real sockets: an HTTP/2 request's socket proxy throws once its stream is gone.)
    if (this.open.has(socket) && !socket.destroyed) {
      const next = currentResponse(socket)
      if (next !== null && next !== response && followed.get(next) !== state) this.follow(next, state)
    }
    // Busy connections move as soon as their last response has finished, in the same tick.
    if (this.draining && state.busy === 0 && !socket.destroyed) this.moves.tryHandoff(socket, state)
  }

  /**
   * During a drain: the connection of this response closes after it instead of waiting its turn to
   * move. A health checker on a persistent connection (Envoy's) would otherwise hear the draining
   * generation's 503 at every probe until its connection moved; reconnecting, it reaches the new one.
   */
  closeConnectionAfter (response: ServerResponse): void {
    const state = followed.get(response)
    if (state !== undefined && this.connections.get(state.socket) === state) this.moves.keepHere(state)
  }

  /** Offers every idle connection to the handoff again (it has room for one more now). */
  offerIdle (): void {
    if (this.draining) this.moves.offerIdle()
  }

  /**
   * From now on every response says `Connection: close`; idle connections are closed once idle for
   * `idleGrace` ms. Resolves when no connection is left (the caller stops accepting first).
   */
  drain (idleGrace: number, handoff?: Handoff, readyToMove?: ReadyToMove, hasRoom?: () => boolean): Promise<void> {
    if (!this.draining) {
      this.draining = true
      this.moves.begin(handoff, readyToMove, hasRoom)
      for (const server of this.requestListeners.keys()) this.listenForRequests(server)
      const now = Date.now()
      const clock = timerClock()
      for (const [socket, server] of this.open) this.stateAtDrainStart(socket, server, now, clock)
      // Idle connections move in the same tick as this check.
      for (const [socket, state] of [...this.connections]) {
        if (state.busy === 0) this.moves.tryHandoff(socket, state)
      }
      this.sweeper.begin(idleGrace)
    }
    if (this.connections.size > 0) this.sweeper.run()
    return new Promise((resolve) => {
      if (this.connections.size === 0) {
        this.sweeper.stop()
        resolve()
        return
      }
      const previous = this.emptied
      this.emptied = () => {
        this.sweeper.stop()
        previous?.()
        resolve()
      }
    })
  }

  /** The drain's moves are over (see DrainMoves.end): a connection that missed its turn closes after its response. */
  endMoves (): void {
    if (this.draining) this.moves.end()
  }

  /** Open connections, drain or not. */
  get openCount (): number {
    return this.open.size
  }

  /**
   * What a worker reports to the supervisor's keep-alive balance: the open connections that carry
   * requests and that a balance could move. Not upgraded ones (WebSockets) and HTTP/2 sessions, not
   * TLS ones, not one held by an event stream: counted, they made the balance push the keep-alive
   * clients, and their requests, onto the worker with fewer of those.
   */
  get balancedCount (): number {
    let count = 0
    for (const socket of this.open.keys()) {
      if (!this.canEverMove(socket)) continue
      const response = currentResponse(socket)
      if (response === null || !isEventStream(response)) count++
    }
    return count
  }

  /**
   * Up to `max` keep-alive connections that could move to another worker now (not draining):
   * HTTP/1, not upgraded, at least one request served (a connection-per-request client's would
   * only close), no response being written, nothing of a next request parsed (`readyToMove`).
   */
  movable (max: number, readyToMove: ReadyToMove): Array<{ socket: Socket, server: HttpServer }> {
    const found: Array<{ socket: Socket, server: HttpServer }> = []
    if (this.draining) return found
    for (const [socket, server] of this.open) {
      if (found.length >= max) break
      // Not one the server is ending (a `Connection: close` response went out).
      if (socket.destroyed || !socket.writable || !this.canEverMove(socket) || currentResponse(socket) !== null) continue
      if (socket.bytesRead > 0 && hasHttp1Parser(socket) && readyToMove(socket, server)) found.push({ socket, server })
    }
    return found
  }

  /** Neither upgraded (a WebSocket, an HTTP/2 session) nor TLS: the balance may count and move it. */
  private canEverMove (socket: Socket): boolean {
    return !this.upgradedSockets.has(socket) && !isEncrypted(socket)
  }

  /** A connection whose handoff failed after all: track it again, to drain the ordinary way. */
  keep (socket: Socket, server: HttpServer): void {
    if (socket.destroyed) return
    if (!this.open.has(socket)) {
      this.open.set(socket, server)
      socket.on('close', this.onSocketClose)
    }
    const state = this.stateOf(socket, server)
    state.stays = true
    markIdle(state)
    this.moves.kept()
  }

  /**
   * Ends a drain without closing anything (the generation serves again): pending drain() promises
   * resolve, and later requests are answered as usual. Responses already marked keep their
   * `Connection: close`.
   */
  resume (): void {
    if (!this.draining) return
    this.draining = false
    this.moves.stop()
    this.sweeper.stop()
    for (const [server, listener] of this.requestListeners) server.removeListener('request', listener)
    // Back to no work per request: what the drain knew is asked of Node again at the next one.
    for (const state of this.connections.values()) if (state.upgraded) this.upgradedSockets.add(state.socket)
    this.connections.clear()
    const emptied = this.emptied
    this.emptied = undefined
    emptied?.()
  }

  /** Closes every connection left; returns how many there were. */
  cutAll (): number {
    const sockets = new Set<Socket>(this.draining ? this.connections.keys() : this.open.keys())
    for (const socket of sockets) socket.destroy()
    return sockets.size
  }
}

function onResponseClose (this: ServerResponse): void {
  const state = followed.get(this)
  if (state !== undefined) state.tracker.responseClosed(this, state)
}

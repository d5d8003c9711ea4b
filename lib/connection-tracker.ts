// Knows every connection of the servers it watches and whether each is busy, so that a drain can
// finish in-flight requests, answer later ones with `Connection: close`, and close a keep-alive
// connection only once it has been idle for a while (closing one that just went idle races with
// the client's next request: the ECONNRESET that a plain server.close() gives).
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

interface ConnectionState {
  /** Requests received and not yet answered. */
  busy: number
  /** Responses not yet started, which still can get `Connection: close`. */
  responses: Set<ServerResponse>
  idleSince: number
  bytesReadWhenIdle: number
  /** WebSocket and other upgrades: never idle from here. */
  upgraded: boolean
  server: HttpServer
  socket: Socket
  tracker: ConnectionTracker
  /** The handoff was refused for this connection: it drains the ordinary way. */
  stays: boolean
}

/** Moves an idle connection to the next generation; false when it cannot (it then drains here). */
export type Handoff = (socket: Socket, server: HttpServer) => boolean
/** False while a connection that looks idle may not move yet (its next request has begun arriving). */
export type ReadyToMove = (socket: Socket, server: HttpServer) => boolean

const kConnection = Symbol('fastify-hot-reload.connection')
type TrackedResponse = ServerResponse & { [kConnection]?: ConnectionState }

export class ConnectionTracker {
  private readonly connections = new Map<Socket, ConnectionState>()
  private readonly servers = new Set<HttpServer>()
  private draining = false
  private idleGrace = 0
  private handoff: Handoff | undefined
  private readyToMove: ReadyToMove | undefined
  private moved = 0
  private sweeper: NodeJS.Timeout | undefined
  private emptied: (() => void) | undefined

  get size (): number {
    return this.connections.size
  }

  get isDraining (): boolean {
    return this.draining
  }

  /** Connections handed to the next generation during the drain. */
  get movedConnections (): number {
    return this.moved
  }

  watch (server: HttpServer): void {
    if (this.servers.has(server)) return
    this.servers.add(server)
    server.prependListener('connection', (socket: Socket) => { this.stateOf(socket, server) })
    server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => this.onRequest(request, response, server))
    server.prependListener('upgrade', (request: IncomingMessage) => { this.stateOf(request.socket, server).upgraded = true })
  }

  private stateOf (socket: Socket, server: HttpServer): ConnectionState {
    let state = this.connections.get(socket)
    if (state === undefined) {
      state = { busy: 0, responses: new Set(), idleSince: Date.now(), bytesReadWhenIdle: socket.bytesRead, upgraded: false, server, socket, tracker: this, stays: false }
      this.connections.set(socket, state)
      socket.once('close', () => {
        this.connections.delete(socket)
        if (this.connections.size === 0) this.emptied?.()
      })
    }
    return state
  }

  private onRequest (request: IncomingMessage, response: ServerResponse, server: HttpServer): void {
    const state = this.stateOf(request.socket, server)
    state.busy++
    if (this.draining && this.staysHere(state)) response.setHeader('connection', 'close')
    else state.responses.add(response)
    ;(response as TrackedResponse)[kConnection] = state
    // One shared listener, no closure per request: this is the hot path.
    response.on('close', onResponseClose)
  }

  private staysHere (state: ConnectionState): boolean {
    return this.handoff === undefined || state.stays || state.upgraded
  }

  /** @internal called by onResponseClose */
  responseClosed (response: TrackedResponse, state: ConnectionState): void {
    const socket = state.socket
    response[kConnection] = undefined
    state.busy--
    state.responses.delete(response)
    state.idleSince = Date.now()
    state.bytesReadWhenIdle = socket.bytesRead
    // Busy connections move as soon as their last response has finished, in the same tick.
    if (this.draining && state.busy === 0 && !socket.destroyed) this.tryHandoff(socket, state)
  }

  private tryHandoff (socket: Socket, state: ConnectionState): void {
    if (this.handoff === undefined || this.staysHere(state) || !this.connections.has(socket)) return
    // Not yet: it is tried again after its next response, or at the next sweep.
    if (this.readyToMove !== undefined && !this.readyToMove(socket, state.server)) return
    if (this.handoff(socket, state.server)) {
      this.connections.delete(socket)
      this.moved++
      if (this.connections.size === 0) this.emptied?.()
      return
    }
    // It drains here after all: from now on its responses close it.
    state.stays = true
    for (const response of state.responses) if (!response.headersSent) response.setHeader('connection', 'close')
  }

  /**
   * From now on every response says `Connection: close`; idle connections are closed once idle for
   * `idleGrace` ms. Resolves when no connection is left (the caller stops accepting first).
   */
  drain (idleGrace: number, handoff?: Handoff, readyToMove?: ReadyToMove): Promise<void> {
    if (!this.draining) {
      this.draining = true
      this.idleGrace = idleGrace
      this.handoff = handoff
      this.readyToMove = readyToMove
      for (const state of this.connections.values()) {
        if (!this.staysHere(state)) continue
        for (const response of state.responses) {
          if (!response.headersSent) response.setHeader('connection', 'close')
        }
        state.responses.clear()
      }
      // Idle connections move in the same tick as this check.
      for (const [socket, state] of [...this.connections]) {
        if (state.busy === 0 && socket.bytesRead === state.bytesReadWhenIdle) this.tryHandoff(socket, state)
      }
      this.sweep()
    }
    if (this.sweeper === undefined && this.connections.size > 0) {
      this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(100, this.idleGrace / 4)))
      this.sweeper.unref()
    }
    return new Promise((resolve) => {
      if (this.connections.size === 0) {
        this.stop()
        resolve()
        return
      }
      const previous = this.emptied
      this.emptied = () => {
        this.stop()
        previous?.()
        resolve()
      }
    })
  }

  /** A connection whose handoff failed after all: track it again, to drain the ordinary way. */
  keep (socket: Socket, server: HttpServer): void {
    if (socket.destroyed) return
    const state = this.stateOf(socket, server)
    state.stays = true
    state.idleSince = Date.now()
    state.bytesReadWhenIdle = socket.bytesRead
    this.moved--
  }

  /**
   * Ends a drain without closing anything (the generation serves again): pending drain() promises
   * resolve, and later requests are answered as usual. Responses already marked keep their
   * `Connection: close`.
   */
  resume (): void {
    if (!this.draining) return
    this.draining = false
    this.handoff = undefined
    this.moved = 0
    this.stop()
    const emptied = this.emptied
    this.emptied = undefined
    emptied?.()
  }

  /** Closes every connection left; returns how many there were. */
  cutAll (): number {
    const count = this.connections.size
    for (const socket of this.connections.keys()) socket.destroy()
    return count
  }

  private stop (): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper)
    this.sweeper = undefined
  }

  private sweep (): void {
    const now = Date.now()
    const expired: Socket[] = []
    for (const [socket, state] of [...this.connections]) {
      if (this.inUse(socket, state, now)) continue
      if (!this.staysHere(state)) this.tryHandoff(socket, state)
      else if (now - state.idleSince >= this.idleGrace) expired.push(socket)
    }
    // Timers run before the event loop reads I/O: after this process was stalled (a loaded machine,
    // GC, a long synchronous task), a request the client sent in time can still wait unread in the
    // kernel, and closing its connection now would reset it. Close only after this turn's I/O is read.
    if (expired.length > 0) setImmediate(() => this.closeExpired(expired))
  }

  private closeExpired (sockets: Socket[]): void {
    const now = Date.now()
    for (const socket of sockets) {
      const state = this.connections.get(socket)
      if (state === undefined || socket.destroyed || this.inUse(socket, state, now)) continue
      if (this.staysHere(state) && now - state.idleSince >= this.idleGrace) socket.destroy()
    }
  }

  /** True when the connection is not idle: a response under way, upgraded, or a request on its way. */
  private inUse (socket: Socket, state: ConnectionState, now: number): boolean {
    if (state.busy > 0 || state.upgraded) return true
    // Bytes read since the last response: a request is on its way, not idle.
    if (socket.bytesRead !== state.bytesReadWhenIdle) {
      state.bytesReadWhenIdle = socket.bytesRead
      state.idleSince = now
      return true
    }
    return false
  }
}

function onResponseClose (this: TrackedResponse): void {
  const state = this[kConnection]
  if (state !== undefined) state.tracker.responseClosed(this, state)
}

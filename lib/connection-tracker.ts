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
}

const kConnection = Symbol('fastify-hot-reload.connection')
type TrackedResponse = ServerResponse & { [kConnection]?: ConnectionState }

export class ConnectionTracker {
  private readonly connections = new Map<Socket, ConnectionState>()
  private readonly servers = new Set<HttpServer>()
  private draining = false
  private idleGrace = 0
  private sweeper: NodeJS.Timeout | undefined
  private emptied: (() => void) | undefined

  get size (): number {
    return this.connections.size
  }

  get isDraining (): boolean {
    return this.draining
  }

  watch (server: HttpServer): void {
    if (this.servers.has(server)) return
    this.servers.add(server)
    server.prependListener('connection', this.onConnection)
    server.prependListener('request', this.onRequest)
    server.prependListener('upgrade', this.onUpgrade)
  }

  private readonly onConnection = (socket: Socket): void => {
    this.stateOf(socket)
  }

  private stateOf (socket: Socket): ConnectionState {
    let state = this.connections.get(socket)
    if (state === undefined) {
      state = { busy: 0, responses: new Set(), idleSince: Date.now(), bytesReadWhenIdle: socket.bytesRead, upgraded: false }
      this.connections.set(socket, state)
      socket.once('close', () => {
        this.connections.delete(socket)
        if (this.connections.size === 0) this.emptied?.()
      })
    }
    return state
  }

  private readonly onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const state = this.stateOf(request.socket)
    state.busy++
    if (this.draining) response.setHeader('connection', 'close')
    else state.responses.add(response)
    ;(response as TrackedResponse)[kConnection] = state
    response.once('close', onResponseClose)
  }

  private readonly onUpgrade = (request: IncomingMessage): void => {
    this.stateOf(request.socket).upgraded = true
  }

  /**
   * From now on every response says `Connection: close`; idle connections are closed once idle for
   * `idleGrace` ms. Resolves when no connection is left (the caller stops accepting first).
   */
  drain (idleGrace: number): Promise<void> {
    if (!this.draining) {
      this.draining = true
      this.idleGrace = idleGrace
      for (const state of this.connections.values()) {
        for (const response of state.responses) {
          if (!response.headersSent) response.setHeader('connection', 'close')
        }
        state.responses.clear()
      }
      this.sweep()
      this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(100, idleGrace / 4)))
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
    for (const [socket, state] of this.connections) {
      if (state.busy > 0 || state.upgraded) continue
      // Bytes read since the last response: a request is on its way, not idle.
      if (socket.bytesRead !== state.bytesReadWhenIdle) {
        state.bytesReadWhenIdle = socket.bytesRead
        state.idleSince = now
        continue
      }
      if (now - state.idleSince >= this.idleGrace) socket.destroy()
    }
  }
}

function onResponseClose (this: TrackedResponse): void {
  const state = this[kConnection]
  if (state === undefined) return
  this[kConnection] = undefined
  state.busy--
  state.responses.delete(this)
  state.idleSince = Date.now()
  state.bytesReadWhenIdle = this.socket?.bytesRead ?? state.bytesReadWhenIdle
}

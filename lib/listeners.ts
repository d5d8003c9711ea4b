// The listening sockets of one Fastify instance: which servers are ours (Fastify binds extra ones
// for 'localhost'), the listen hook that makes a successor adopt inherited sockets (from the
// process's pool), stopping accepting during a drain, and listening again on socket copies when a
// generation resumes.
import { existsSync, unlinkSync } from 'node:fs'
import type { Server } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { InheritedSocket } from './handoff-env'
import { addListenHook } from './listen-interceptor'
import { formatAddress, fromServerAddress, type ListenerAddress } from './listener-address'
import { listeningFd, setPipeName } from './node-internals'
import { SocketAdoption, type InheritedPool } from './socket-adoption'

/** What a successor needs to take over: the addresses and the fds to pass at 3, 4, ... */
export interface ListeningSockets {
  addresses: ListenerAddress[]
  fds: number[]
}

export class Listeners {
  private readonly servers = new Set<Server>()
  private readonly requestHandlers: Set<Function>
  private readonly adoption: SocketAdoption
  private removeListenHook: (() => void) | undefined
  /** Each server's address, kept from the drain on (a closed server no longer says it). */
  private readonly keys = new Map<Server, string>()
  /** Servers whose closeIdleConnections() does nothing for now: a drain's (see stopAccepting). */
  private readonly idleClosesHeld = new Set<Server>()

  /**
   * @param onServer called once for each server of ours, before it listens (to watch its connections)
   * @param gate awaited before the first adoption (see SocketAdoption)
   */
  constructor (app: FastifyInstance, pool: InheritedPool, onServer: (server: Server) => void, gate: () => Promise<boolean>) {
    this.adoption = new SocketAdoption(pool, gate)
    // Fastify's extra servers (listen on 'localhost') share the main server's request handler.
    this.requestHandlers = new Set(app.server.listeners('request'))
    const isOurs = (server: Server): boolean =>
      server === app.server || server.listeners('request').some((listener) => this.requestHandlers.has(listener))
    onServer(app.server)
    this.removeListenHook = addListenHook((server, args, listen) => {
      if (!isOurs(server)) return false
      if (!this.servers.has(server)) {
        this.servers.add(server)
        this.gateIdleCloses(server)
        if (server !== app.server) onServer(server)
      }
      return this.adoption.listen(server, args, listen)
    })
  }

  /**
   * Gives the server a closeIdleConnections() of its own that a drain can hold (stopAccepting):
   * installed once, before the server listens. Added at the drain's start instead, the own property
   * changed the server's hidden class there, and V8 threw away its optimized code for Node's
   * request path (which reads the server on every request) in the middle of the drain.
   */
  private gateIdleCloses (server: Server): void {
    const http = server as Server & { closeIdleConnections?: () => void }
    const close = http.closeIdleConnections
    if (typeof close !== 'function') return
    const held = this.idleClosesHeld
    http.closeIdleConnections = function (this: Server) {
      if (!held.has(server)) close.call(this)
    }
  }

  /** Every listen() is done: later listen() calls are no longer ours to steer. */
  stopIntercepting (): void {
    this.removeListenHook?.()
    this.removeListenHook = undefined
  }

  /** The addresses our servers listen on. */
  addresses (): ListenerAddress[] {
    return [...this.servers].map((server) => fromServerAddress(server.address())).filter((a): a is ListenerAddress => a !== null)
  }

  /** Every server of ours (listening or not). */
  get all (): Iterable<Server> {
    return this.servers
  }

  get adopted (): Array<{ socket: InheritedSocket, server: Server }> {
    return this.adoption.adopted
  }

  /** Listening servers we bound ourselves (not adopted), with their addresses: the supervisor keeps them. */
  boundHere (): Array<{ address: string, server: Server }> {
    const adopted = new Set(this.adoption.adopted.map(({ server }) => server))
    const bound: Array<{ address: string, server: Server }> = []
    for (const server of this.servers) {
      const address = fromServerAddress(server.address())
      if (adopted.has(server) || !server.listening || address === null) continue
      bound.push({ address: formatAddress(address), server })
    }
    return bound
  }

  /** The sockets a successor inherits from this instance (none when it does not listen). */
  forSuccessor (): Array<{ address: ListenerAddress | null, fd: number }> {
    return [...this.servers].filter((server) => server.listening)
      .map((server) => ({ address: fromServerAddress(server.address()), fd: listeningFd(server) }))
  }

  /**
   * Our server for a listener key (formatted address), for a connection handed over: the one
   * listening there, or the one our drain closed there. A drain on probation can be told to serve
   * again and be handed a connection in the same read of its channel, before it listens again
   * (a reset, seen under load); served by the closed server, the connection is simply one more of
   * the drain's, and stays once it resumes.
   */
  serverFor (key: string): Server | undefined {
    const listening = [...this.servers].find((candidate) => {
      const address = fromServerAddress(candidate.address())
      return candidate.listening && address !== null && formatAddress(address) === key
    })
    return listening ?? [...this.servers].find((candidate) => !candidate.listening && this.keys.get(candidate) === key)
  }

  /** The listener key of a server: its address now, or (closed by a drain) when its drain began. */
  keyOf (server: object): string | undefined {
    const kept = this.keys.get(server as Server)
    if (kept !== undefined || !this.servers.has(server as Server)) return kept
    const address = fromServerAddress((server as Server).address())
    return address === null ? undefined : formatAddress(address)
  }

  /**
   * Closes the listening sockets only. The kernel socket lives on in the successor, so nothing is
   * refused. Node's http close() would also close idle keep-alive connections at once (racing with
   * clients' next requests), so that part is switched off: the drain closes them once idle.
   */
  stopAccepting (removeUnixPaths: boolean): void {
    for (const server of this.servers) {
      const address = fromServerAddress(server.address())
      if (address !== null) this.keys.set(server, formatAddress(address))
    }
    for (const server of this.servers) {
      this.idleClosesHeld.add(server)
      if (!server.listening) continue
      const address = fromServerAddress(server.address())
      server.close()
      // Our unix sockets outlive a close (see SocketAdoption); on shutdown the path goes too.
      if (removeUnixPaths && address?.kind === 'unix' && existsSync(address.path)) {
        try { unlinkSync(address.path) } catch {}
      }
    }
  }

  /**
   * Resume: listen again on the copies (by listener key) that came back, taking ours from the map.
   * Returns the keys for which no copy came (those addresses stay dark).
   */
  listenAgain (copies: Map<string, { close: () => void }>): string[] {
    const missing: string[] = []
    for (const server of this.servers) {
      // Our drain held this; it closes idle connections again.
      this.idleClosesHeld.delete(server)
      const key = this.keys.get(server)
      const copy = key === undefined ? undefined : copies.get(key)
      if (key === undefined) continue
      if (copy === undefined) {
        missing.push(key)
        continue
      }
      copies.delete(key)
      server.listen(copy)
      if (key.startsWith('unix:')) setPipeName(server, key.slice('unix:'.length))
    }
    return missing
  }
}

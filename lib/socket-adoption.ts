// Decides, for each listen() of this Fastify instance's servers, whether it adopts an inherited
// socket, binds a unix socket so that closing it later does not unlink the path, or binds normally.
// The inherited sockets are one pool for the whole process: with several Fastify instances, each
// claims the sockets whose address its own listen() asks for.
import { lookup } from 'node:dns'
import { existsSync, renameSync } from 'node:fs'
import type { Server } from 'node:net'
import { dirname, join } from 'node:path'
import { hotReloadError } from './errors'
import type { InheritedSocket, ReusePortPlan } from './handoff-env'
import {
  formatAddress, fromServerAddress, literalHosts, parseListenArgs, requestMatches, type ListenerAddress, type ListenRequest
} from './listener-address'
import { setPipeName } from './node-internals'

type ListenArgs = unknown[]
type Listen = (args: ListenArgs) => void

// Unix socket paths are limited to 107 bytes on Linux (sun_path).
const MAX_UNIX_PATH = 107

/** The process's inherited sockets not yet claimed by any instance's listen(). */
export class InheritedPool {
  private readonly unclaimed: InheritedSocket[]
  /** Addresses to bind with SO_REUSEPORT, not yet bound (the supervisor's socket per slot). */
  private readonly toBind: ListenerAddress[]

  constructor (inherited: InheritedSocket[], private readonly reusePort?: ReusePortPlan) {
    this.unclaimed = [...inherited]
    this.toBind = [...(reusePort?.addresses ?? [])]
  }

  /**
   * How a bind of ours (no inherited socket for it) is made with SO_REUSEPORT: {} as asked, an
   * address to bind instead of the asked one (the port of the slots before us, not the app's 0), or
   * undefined for an ordinary bind.
   */
  reuseBind (request: ListenRequest, hosts: string[]): Partial<{ host: string, port: number }> | undefined {
    if (this.reusePort === undefined || request.kind !== 'tcp') return undefined
    if (this.reusePort.all) return {}
    const index = this.toBind.findIndex((address) => requestMatches(request, hosts, address))
    if (index === -1) return undefined
    const [address] = this.toBind.splice(index, 1)
    return address.kind === 'tcp' ? { host: address.address, port: address.port } : undefined
  }

  get pending (): InheritedSocket[] {
    return [...this.unclaimed]
  }

  get hasTcp (): boolean {
    return this.unclaimed.some((socket) => socket.address.kind === 'tcp')
  }

  /** Takes the first socket matching the request (hosts in order: listen('localhost') binds the first address a lookup gives). */
  claim (request: ListenRequest, hosts: string[]): InheritedSocket | undefined {
    for (const host of request.kind === 'tcp' ? hosts : ['']) {
      const index = this.unclaimed.findIndex((socket) => requestMatches(request, [host], socket.address))
      if (index !== -1) return this.unclaimed.splice(index, 1)[0]
    }
    return undefined
  }
}

export class SocketAdoption {
  readonly adopted: Array<{ socket: InheritedSocket, server: Server }> = []

  /**
   * @param pool the process's inherited sockets, shared by its instances
   * @param gate awaited before the first adoption: a successor accepts no connection before its
   *   own readiness check passed; false means "do not listen at all" (it is being taken down).
   */
  constructor (private readonly pool: InheritedPool, private readonly gate: () => Promise<boolean> = async () => true) {}

  /** The ListenHook body for one of our servers. Returns true when it handled the call. */
  listen (server: Server, args: ListenArgs, listen: Listen): boolean {
    const request = parseListenArgs(args)
    if (request === null) return false
    const callback = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined
    const signal = (args[0] as { signal?: unknown } | null)?.signal
    const hosts = request.kind === 'tcp' ? literalHosts(request.host) : []
    if (hosts === null) {
      if (!this.pool.hasTcp) return false
      // A host name: look it up as listen() would, then decide.
      lookup((request as { host: string }).host, { all: true }, (err, found) => {
        const match = err === null ? this.pool.claim(request, found.map((entry) => entry.address)) : undefined
        if (match === undefined) listen(args)
        else this.adopt(server, match, request, listen, callback, signal)
      })
      return true
    }
    const match = this.pool.claim(request, hosts)
    if (match !== undefined) {
      this.adopt(server, match, request, listen, callback, signal)
      return true
    }
    const reuse = this.pool.reuseBind(request, hosts)
    if (reuse !== undefined) {
      const asked = typeof args[0] === 'object' && args[0] !== null
        ? { ...(args[0] as object) }
        : { port: request.kind === 'tcp' ? request.port : 0, host: request.kind === 'tcp' ? request.host : undefined }
      const options = { ...asked, ...reuse, reusePort: true }
      listen(callback === undefined ? [options] : [options, callback])
      return true
    }
    if (request.kind === 'unix') return this.bindUnixKeepingPath(server, request.path, args, listen)
    return false
  }

  private adopt (server: Server, socket: InheritedSocket, request: ListenRequest, listen: Listen, callback: unknown, signal: unknown): void {
    this.adopted.push({ socket, server })
    server.prependOnceListener('listening', () => {
      if (request.kind === 'unix') {
        setPipeName(server, request.path)
        return
      }
      const actual = fromServerAddress(server.address())
      if (actual === null || formatAddress(actual) !== formatAddress(socket.address)) {
        const error = hotReloadError('HOT_RELOAD_INVALID_HANDOFF',
          `fastify-hot-reload: inherited fd ${socket.fd} was named ${formatAddress(socket.address)} in LISTEN_FDNAMES but listens on ${actual === null ? 'nothing' : formatAddress(actual)}`)
        // Close after the other 'listening' listeners ran (Fastify reads the address there).
        process.nextTick(() => server.close())
        server.emit('error', error)
      }
    })
    const options: Record<string, unknown> = { fd: socket.fd }
    if (signal !== undefined) options.signal = signal
    void this.gate().then((proceed) => {
      if (proceed) listen(callback === undefined ? [options] : [options, callback])
    })
  }

  /**
   * libuv unlinks a unix socket's path when the socket it bound by that name is closed, which would
   * take the path away from the successor that shares the socket. Bind under a temporary name and
   * rename it into place: the path then outlives every generation's close.
   */
  private bindUnixKeepingPath (server: Server, path: string, args: ListenArgs, listen: Listen): boolean {
    if (path.startsWith('\0') || existsSync(path)) return false
    const temporary = temporaryUnixPath(path, process.pid, ++temporaryNames)
    if (temporary === undefined) {
      process.emitWarning(`fastify-hot-reload: the unix socket path ${path} leaves no room in its directory's name for a temporary name of ${MAX_UNIX_PATH} bytes at most; ` +
        'it is bound as it is, and the first reload will remove it (the generation that bound it unlinks it as it closes). Use a shorter directory', { code: 'HOT_RELOAD_UNIX_PATH' })
      return false
    }
    server.prependOnceListener('listening', () => {
      try {
        renameSync(temporary, path)
        setPipeName(server, path)
      } catch (cause) {
        process.nextTick(() => server.close())
        server.emit('error', hotReloadError('HOT_RELOAD_INVALID_HANDOFF',
          `fastify-hot-reload: could not move the unix socket ${temporary} to ${path}`, cause))
      }
    })
    const options = typeof args[0] === 'object' ? { ...(args[0] as object), path: temporary } : { path: temporary }
    listen([options, ...args.slice(1)])
    return true
  }
}

/** Temporary unix socket names made by this process: two binds in one directory at once get two. */
let temporaryNames = 0

/**
 * A temporary name beside `path` (same directory: a rename does not cross file systems) that fits
 * a unix socket's address, or undefined when none does. `<path>.<pid>.tmp` first; for a long path a
 * short name in its directory, told apart from this process's other binds by `serial`.
 */
export function temporaryUnixPath (path: string, pid: number, serial: number): string | undefined {
  const directory = dirname(path)
  const candidates = [`${path}.${pid}.tmp`, join(directory, `.${pid}-${serial}.tmp`), join(directory, `.${pid}-${serial}`)]
  return candidates.find((candidate) => candidate !== path && Buffer.byteLength(candidate) <= MAX_UNIX_PATH)
}

// The only place that touches Node internals. Each accessor checks its shape and fails loudly
// (HOT_RELOAD_NODE_INTERNALS) when a Node version changes it; test/node-internals.test.js runs on
// every Node the suite runs on.
import { EventEmitter } from 'node:events'
import { IncomingMessage, ServerResponse } from 'node:http'
import { Socket as NetSocket, type Server, type Socket } from 'node:net'
import { hotReloadError } from './errors'

interface ServerInternals {
  _handle?: { fd?: unknown } | null
  _pipeName?: string
}

/** The fd of a listening server's socket: Node gives no public way to pass it to spawn(). */
export function listeningFd (server: Server): number {
  const fd = (server as unknown as ServerInternals)._handle?.fd
  if (typeof fd !== 'number' || fd < 0) {
    throw hotReloadError('HOT_RELOAD_NODE_INTERNALS',
      'fastify-hot-reload: cannot read the fd of a listening server (net.Server#_handle.fd); this Node version is not supported')
  }
  return fd
}

/**
 * A server that listens on a unix socket it did not bind by that name (an adopted fd, or a bind
 * under a temporary name) reports its path through _pipeName, as a bind by name would.
 */
export function setPipeName (server: Server, path: string): void {
  const internals = server as unknown as ServerInternals
  if (!('_pipeName' in internals) && internals._handle === undefined) {
    throw hotReloadError('HOT_RELOAD_NODE_INTERNALS',
      'fastify-hot-reload: net.Server has no _pipeName; this Node version is not supported')
  }
  internals._pipeName = path
}

/** The raw listening handle, to send over IPC: the receiver keeps it without accepting on it. */
export function listeningHandle (server: Server): object {
  listeningFd(server)
  return (server as unknown as { _handle: object })._handle
}

interface SocketInternals {
  _handle?: { readStop?: () => number, readStart?: () => number, reading?: boolean, fd?: number } | null
  parser?: { _consumed?: boolean, unconsume?: () => void, consume?: (handle: object) => void, incoming?: unknown, onIncoming?: unknown } | null
  encrypted?: boolean
}

/**
 * Stops Node reading from an accepted HTTP connection and detaches the HTTP parser from it, so
 * that every byte not yet read stays in the kernel for the process we hand the socket to. Returns
 * the raw handle to send over IPC, or null when this socket cannot be moved (TLS, or internals
 * that are not what this module knows).
 */
export function detachConnection (socket: Socket): object | null {
  const internals = socket as unknown as SocketInternals
  const handle = internals._handle
  const parser = internals.parser
  // HTTP/1 connections only: an HTTP/2 session has no HTTP/1 parser, a TLS socket is `encrypted`.
  if (isEncrypted(socket) || parser === undefined || parser === null || typeof parser.unconsume !== 'function') return null
  if (handle === undefined || handle === null || typeof handle.readStop !== 'function' || typeof handle.readStart !== 'function') return null
  if (parser._consumed === true) {
    parser.unconsume()
    parser._consumed = false
  }
  handle.reading = false
  handle.readStop()
  return handle
}

/**
 * Undoes detachConnection when the handoff failed: the parser reads the socket again (nothing was
 * read meanwhile: unread bytes waited in the kernel), and the connection drains here.
 */
export function reattachConnection (socket: Socket): boolean {
  const internals = socket as unknown as SocketInternals
  const handle = internals._handle
  const parser = internals.parser
  if (handle === undefined || handle === null || parser === undefined || parser === null || typeof parser.consume !== 'function' || typeof handle.readStart !== 'function') return false
  parser.consume(handle)
  parser._consumed = true
  handle.reading = true
  handle.readStart()
  return true
}

/**
 * Calls `atStart` once, when the HTTP/1 parser of this connection has read the headers of its next
 * request and before Node's server takes the request in (its parser.onIncoming, which Node sets for
 * each connection; only this connection's is wrapped, and only until then). False where there is
 * no such parser: nothing is called then.
 */
export function beforeNextRequest (socket: Socket, atStart: () => void): boolean {
  const parser = (socket as unknown as SocketInternals).parser
  const onIncoming = parser?.onIncoming
  if (parser === undefined || parser === null || typeof onIncoming !== 'function') return false
  parser.onIncoming = function (this: unknown, ...args: unknown[]): unknown {
    parser.onIncoming = onIncoming
    atStart()
    return onIncoming.apply(this, args)
  }
  return true
}

/** True for a connection an HTTP/1 parser reads (not an HTTP/2 session, not an upgraded one). */
export function hasHttp1Parser (socket: Socket): boolean {
  const parser = (socket as unknown as SocketInternals).parser
  return parser !== undefined && parser !== null
}

/**
 * True when the HTTP parser of this connection is between messages: not even the first byte of a
 * next request has been parsed. (A pipelining client's next request can be half read while its
 * previous response ends; moving the socket then would lose that half.) Node's own
 * closeIdleConnections() asks the same list. False when this cannot be known: nothing moves then.
 *
 * Node's list is not the whole answer: it counts a connection as active (not idle) from the moment
 * it is accepted until its first request is complete (its headersTimeout clock runs from the
 * accept). A connection whose first request has not begun (its client has sent nothing yet, or it
 * was handed to us from the previous generation and its client has sent nothing since) is
 * between messages all the same: nothing has been read from it, so its parser has parsed nothing.
 */
export function parserIsIdle (socket: Socket, server: object): boolean {
  const parser = (socket as unknown as SocketInternals).parser
  const symbol = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections')
  const connections = symbol === undefined ? undefined : (server as Record<symbol, { idle?: () => unknown[] } | undefined>)[symbol]
  if (parser === undefined || parser === null || typeof connections?.idle !== 'function') return false
  if (idleParsers(server, connections as { idle: () => unknown[] }).has(parser)) return true
  return socket.bytesRead === 0
}

// A drain asks about every connection in one go: list the idle parsers once per synchronous run
// (parsers change state only in I/O callbacks, never in the middle of one).
let idleCache: { server: object, parsers: Set<unknown> } | undefined

function idleParsers (server: object, connections: { idle: () => unknown[] }): Set<unknown> {
  if (idleCache?.server === server) return idleCache.parsers
  const cache = { server, parsers: new Set(connections.idle()) }
  idleCache = cache
  queueMicrotask(() => { if (idleCache === cache) idleCache = undefined })
  return cache.parsers
}

/** A connection handed over from another process (a raw handle from IPC), as a net.Socket. */
export function socketFromHandle (handle: object): Socket {
  return new NetSocket({ handle, readable: true, writable: true } as unknown as ConstructorParameters<typeof NetSocket>[0])
}

/**
 * A raw handle on a listening fd this process holds but never listens on (the supervisor's
 * socket-activated fds), to send over IPC: wrapped, not read, not accepted on.
 */
export function handleOfHeldFd (fd: number): object {
  const socket = new NetSocket({ fd, readable: false, writable: false })
  const handle = (socket as unknown as SocketInternals)._handle
  if (handle === undefined || handle === null || handle.fd !== fd) {
    throw hotReloadError('HOT_RELOAD_NODE_INTERNALS',
      'fastify-hot-reload: a net.Socket made from an fd has no _handle with that fd; this Node version is not supported')
  }
  return handle
}

/**
 * The connection that carries an HTTP/2 session, as the server's connection listener got it (the
 * TCP socket of 'connection' for h2c, the TLSSocket of 'secureConnection' over TLS): Node gives
 * only a proxy of it (session.socket), and holds it under a symbol. Null when not what this knows.
 */
export function http2SessionConnection (session: object): Socket | null {
  const symbol = Object.getOwnPropertySymbols(session).find((s) => s.description === 'socket')
  const socket = symbol === undefined ? undefined : (session as Record<symbol, unknown>)[symbol]
  return socket instanceof NetSocket ? socket : null
}

/** A TLS connection: its bytes are decrypted in this process, so it cannot move to another. */
export function isEncrypted (socket: Socket): boolean {
  return (socket as unknown as SocketInternals).encrypted === true
}

// ---- what a drain asks about connections it did not follow request by request ----------------
// Outside a drain the tracker does nothing per request (lib/connection-tracker.ts). When a drain
// starts it asks each connection what Node already knows: the response it is writing now
// (socket._httpMessage, which Node's own closeIdleConnections() reads) and how long it has been
// without I/O (the keep-alive timer Node arms on an idle connection, refreshed by every read and
// write). checkConnectionInternals() proves both at registration, so that a Node version that
// changed them stops the app at boot instead of misleading a drain.

interface LinkedSocket { _httpMessage?: unknown }
interface TimerInternals { _idleStart?: unknown, _idleTimeout?: unknown }

let connectionInternalsChecked = false
let kSocketTimeout: symbol | undefined

function internalsError (what: string): Error {
  return hotReloadError('HOT_RELOAD_NODE_INTERNALS', `fastify-hot-reload: ${what}; this Node version is not supported`)
}

/**
 * Throws HOT_RELOAD_NODE_INTERNALS unless a server response links itself to its socket as
 * socket._httpMessage, and a net.Socket keeps its idle timer under Symbol(timeout) with the
 * time it was last armed in _idleStart. Runs once per process; cheap (no I/O).
 */
export function checkConnectionInternals (): void {
  if (connectionInternalsChecked) return
  const socket = new NetSocket()
  try {
    // A response assigned to a socket and detached again, as Node's HTTP server does with each one.
    const response = new ServerResponse(new IncomingMessage(socket))
    const fake = new EventEmitter() as EventEmitter & LinkedSocket
    response.assignSocket(fake as unknown as Socket)
    if (fake._httpMessage !== response) throw internalsError('ServerResponse#assignSocket no longer sets socket._httpMessage')
    response.detachSocket(fake as unknown as Socket)
    if (fake._httpMessage !== null) throw internalsError('ServerResponse#detachSocket no longer clears socket._httpMessage')

    const symbol = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'timeout')
    if (symbol === undefined) throw internalsError('net.Socket has no Symbol(timeout) for its idle timer')
    socket.setTimeout(60000)
    const timer = (socket as unknown as Record<symbol, TimerInternals | null>)[symbol]
    if (typeof timer?._idleStart !== 'number' || timer._idleTimeout !== 60000) {
      throw internalsError('net.Socket#setTimeout no longer keeps a timer with _idleStart under Symbol(timeout)')
    }
    socket.setTimeout(0)
    if (typeof timerClockNow() !== 'number') throw internalsError('a Timeout has no numeric _idleStart')
    kSocketTimeout = symbol
    connectionInternalsChecked = true
  } finally {
    socket.destroy()
  }
}

/**
 * The response this HTTP/1 connection is writing now (a pipelining client's later ones wait in a
 * queue Node keeps to itself, and come here one by one), or null when it is between requests or
 * not an HTTP/1 connection.
 */
export function currentResponse (socket: Socket): ServerResponse | null {
  const message = (socket as unknown as LinkedSocket)._httpMessage
  if (message === undefined || message === null) return null
  if (!(message instanceof ServerResponse)) throw internalsError('socket._httpMessage is not a ServerResponse')
  return message
}

/**
 * True when the client pipelined requests that Node has parsed behind `response` (their responses
 * wait in its queue). Node keeps the last request it parsed as the parser's `incoming` until that
 * request's response has finished. A response that says `Connection: close` makes Node end the
 * connection once it is written, and the responses queued behind it are never sent: only the last
 * one may say so. False when this cannot be known.
 */
export function requestsQueuedBehind (socket: Socket, response: ServerResponse): boolean {
  const last = (socket as unknown as SocketInternals).parser?.incoming
  return last !== undefined && last !== null && last !== response.req
}

/** The timers' clock (ms), as a Timeout's _idleStart records it. */
function timerClockNow (): unknown {
  const probe = setTimeout(() => {}, 2 ** 30) as unknown as TimerInternals
  const now = probe._idleStart
  clearTimeout(probe as unknown as NodeJS.Timeout)
  return now
}

/**
 * Milliseconds since this connection last read or wrote, from its armed idle timer (Node arms the
 * keep-alive timer when a response finishes); null when no timer is armed (a request is in
 * progress, or the server has no keep-alive timeout): nothing can be said then.
 * `now` is timerClock() taken once for many connections.
 */
export function idleForMs (socket: Socket, now: number = timerClock()): number | null {
  checkConnectionInternals()
  const timer = (socket as unknown as Record<symbol, TimerInternals | null | undefined>)[kSocketTimeout as symbol]
  if (timer === undefined || timer === null || typeof timer._idleTimeout !== 'number' || timer._idleTimeout < 0) return null
  if (typeof timer._idleStart !== 'number') return null
  return Math.max(0, now - timer._idleStart)
}

/** The timers' clock now, for idleForMs. */
export function timerClock (): number {
  return timerClockNow() as number
}

interface ServerResponseInternals {
  _header?: unknown
}

/**
 * The responses being written on the HTTP/1 connections of a server, found only when asked (a
 * drain), so that serving costs nothing per request: Node's list of connections (the one
 * closeIdleConnections() uses) gives each connection's parser, the parser its socket, the socket
 * the response it is writing (`_httpMessage`). An empty list when this Node has none of it (or
 * for HTTP/2, which has no such list).
 */
export function openResponses (server: object): ServerResponse[] {
  const symbol = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections')
  const connections = symbol === undefined ? undefined : (server as Record<symbol, { all?: () => unknown[] } | undefined>)[symbol]
  if (typeof connections?.all !== 'function') return []
  const responses: ServerResponse[] = []
  for (const parser of connections.all()) {
    const socket = (parser as { socket?: { _httpMessage?: unknown } } | null)?.socket
    const response = socket?._httpMessage
    if (response instanceof ServerResponse) responses.push(response)
  }
  return responses
}

/**
 * True for a response whose headers went out with `Content-Type: text/event-stream`. Headers
 * passed to writeHead() as an object are not kept for getHeader(): the header block sent
 * (`_header`) is read then.
 */
export function isEventStream (response: ServerResponse): boolean {
  const type = response.getHeader('content-type')
  if (typeof type === 'string') return isEventStreamType(type)
  const sent = (response as unknown as ServerResponseInternals)._header
  return response.headersSent && typeof sent === 'string' && EVENT_STREAM_HEADER.test(sent)
}

/** A Content-Type value (or values) that says `text/event-stream`. */
export function isEventStreamType (type: unknown): boolean {
  return typeof type === 'string' && EVENT_STREAM.test(type)
}

const EVENT_STREAM = /^\s*text\/event-stream\s*(;|$)/i
const EVENT_STREAM_HEADER = /^content-type:[ \t]*text\/event-stream[ \t]*(;|\r?$)/im

// Idle keep-alive connections moved between generations (connectionHandoff). The sending side
// detaches a connection from its HTTP parser and sends its raw handle through an outlet: the
// successor's channel (standalone) or the supervisor (supervised), which are the same to it. The
// receiving side serves a handle as if it had accepted it.
import type { Server as HttpServer } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { ConnectionTracker } from './connection-tracker'
import type { Listeners } from './listeners'
import { beforeNextRequest, detachConnection, hasHttp1Parser, parserIsIdle, reattachConnection, socketFromHandle } from './node-internals'

/** Where handed-over connections go. */
export interface ConnectionOutlet {
  readonly open: boolean
  /** Resolves once the handle is on its way; rejects when it cannot be sent. */
  send (listener: string, handle: object): Promise<void>
}

/**
 * Connections whose handle may be on its way at once. Node sends handles over a channel one at a
 * time, each after the receiver's ACK of the one before, so moving every idle connection in one
 * tick only queues them: a detached connection waits, its client's next request unread, behind
 * every handle ahead of it (measured: p99 rose linearly to ~6x steady over the ~400 ms the queue
 * took to empty, bench/reload-tail.js). One at a time, the others are served here until their
 * turn, and the moves as a whole take no longer than Node's queue would (moveRampMs spreads them
 * further, on purpose).
 */
const MOVES_AT_ONCE = 1

/**
 * A drain's moves are spread out (a slow start, as HAProxy's `slowstart` or Envoy's for a new
 * server): the new generation's first requests run on code V8 has not compiled yet, at 2-3x the
 * CPU, and taking every connection at once it answers all of them slowly together. Spread out, it
 * warms up on a few while the old generation serves the rest. Over the probation, less a margin so
 * that the moves end before it (the old generation lives through the probation anyway, holding its
 * socket copies), within these bounds: on Node 26 the new generation was still cold 400 ms after
 * the commit (bench/reload-tail.js, BENCHMARKS.md).
 */
export const MOVE_RAMP_MIN_MS = 400
export const MOVE_RAMP_MAX_MS = 1_500
const MOVE_RAMP_MARGIN_MS = 500

/**
 * How long a drain spreads its moves over, for a probation of `probationMs` (0: none); never more
 * than half the drain's deadline, so that no connection still waits for its turn when it comes.
 */
export function moveRampMs (probationMs: number, drainTimeoutMs: number): number {
  const overProbation = Math.min(MOVE_RAMP_MAX_MS, Math.max(MOVE_RAMP_MIN_MS, probationMs - MOVE_RAMP_MARGIN_MS))
  return Math.min(overProbation, drainTimeoutMs / 2)
}

/**
 * When a drain's moves are over (ConnectionTracker.endMoves): a connection still busy then closes
 * after its response. Twice the ramp and a second (moves wait for the receiver's ACK, one at a time,
 * and a busy connection for a response that ends while one has room), and well before the deadline.
 */
export function movesDeadlineMs (rampMs: number, drainTimeoutMs: number): number {
  return Math.min(2 * rampMs + 1_000, drainTimeoutMs * 0.75)
}

/**
 * A drain's ramp: the one asked for (a supervisor's, from its own probation) or else our options',
 * never more than half our own drain's deadline.
 */
export function drainRampMs (askedMs: number | undefined, options: { probation: number, drainTimeout: number }): number {
  return askedMs === undefined ? moveRampMs(options.probation, options.drainTimeout) : Math.max(0, Math.min(askedMs, options.drainTimeout / 2))
}

export class ConnectionHandoff {
  /**
   * Connections whose handle is still on its way (Node sends one at a time): each one's settle
   * function, and the promise it settles. Node drops the callbacks of sends still queued when the
   * channel dies, so the successor's exit settles the ones left (failAll).
   */
  private readonly inFlight = new Map<(err?: Error | null) => void, Promise<void>>()
  /** The drain's ramp: the time between two moves' starts, and when the next may start. */
  private spacingMs = 0
  private nextMoveAt = 0
  private rampTimer: NodeJS.Timeout | undefined
  private movesTimer: NodeJS.Timeout | undefined
  /** The drain is being cut: whatever can move goes now, without waiting for its turn. */
  private rushing = false

  constructor (
    private readonly tracker: ConnectionTracker,
    private readonly listeners: Listeners,
    private readonly log: FastifyBaseLogger
  ) {}

  /** True while another connection may start moving (see MOVES_AT_ONCE). */
  get hasRoom (): boolean {
    return this.rushing || (this.inFlight.size < MOVES_AT_ONCE && performance.now() >= this.nextMoveAt)
  }

  /**
   * A drain begins with `connections` open: its moves are spread over `rampMs` (moveRampMs), and
   * are over at `movesEndMs` (movesDeadlineMs).
   */
  beginRamp (connections: number, rampMs: number, movesEndMs: number): void {
    this.spacingMs = connections > 1 ? rampMs / connections : 0
    this.nextMoveAt = 0
    if (this.movesTimer !== undefined) clearTimeout(this.movesTimer)
    this.movesTimer = setTimeout(() => {
      this.movesTimer = undefined
      this.tracker.endMoves()
    }, movesEndMs)
    this.movesTimer.unref()
  }

  /**
   * The drain is cut (its deadline, or too many generations draining): the idle connections still
   * waiting for their turn would lose nothing by moving, and everything left is about to be closed,
   * so they all go now, queued on the channel together. Only what cannot move is cut.
   */
  rush (): void {
    this.rushing = true
    // No more turns: a settled move offers the idle ones again at once, not after a ramp's spacing.
    this.stopSpacing()
  }

  /** The drain stopped (the generation serves again): moves, for the balance, go at once. */
  endRamp (): void {
    this.rushing = false
    this.stopSpacing()
    if (this.movesTimer !== undefined) clearTimeout(this.movesTimer)
    this.movesTimer = undefined
  }

  private stopSpacing (): void {
    this.spacingMs = 0
    this.nextMoveAt = 0
    if (this.rampTimer !== undefined) clearTimeout(this.rampTimer)
    this.rampTimer = undefined
  }

  /**
   * Sends an idle keep-alive connection through the outlet; false when it cannot move (it drains
   * here). `stay` takes it back when the send fails (by default: it drains here).
   */
  send (socket: Socket, server: HttpServer, outlet: ConnectionOutlet, stay: (socket: Socket, server: HttpServer) => void = (s, srv) => this.tracker.keep(s, srv)): boolean {
    const listener = this.listeners.keyOf(server)
    if (listener === undefined || !outlet.open) return false
    const handle = detachConnection(socket)
    if (handle === null) return false
    this.nextMoveAt = performance.now() + this.spacingMs
    this.dispatch(listener, handle, outlet, (err) => {
      // Our copy of the fd goes once theirs is on its way; the connection itself stays open.
      if (err === undefined) {
        socket.destroy()
      } else if (reattachConnection(socket)) {
        // Nothing was read meanwhile; it drains here with the ordinary close.
        this.log.warn({ hotReload: 'handoff-failed', closed: false, err: err.message }, 'hot-reload: a connection could not be handed over; it stays here')
        stay(socket, server)
      } else {
        this.log.warn({ hotReload: 'handoff-failed', closed: true, err: err.message }, 'hot-reload: a connection could not be handed over nor kept; closing it')
        socket.destroy()
      }
    })
    return true
  }

  /**
   * A connection handed to us, passed on as it came (a raw handle, never read here): our copy goes
   * once theirs is on its way. Served here after all when it cannot be sent.
   */
  passOn (listener: string, handle: object, outlet: ConnectionOutlet): void {
    this.dispatch(listener, handle, outlet, (err) => {
      if (err === undefined) (handle as { close?: () => void }).close?.()
      else this.receive(listener, handle)
    })
  }

  /** Sends `handle` through the outlet, counted in flight until `settled` has run, once (with the send's error, if any). */
  private dispatch (listener: string, handle: object, outlet: ConnectionOutlet, settled: (err?: Error) => void): void {
    let done: () => void = () => {}
    const sending = new Promise<void>((resolve) => { done = resolve })
    const settle = (err?: Error | null): void => {
      // Once only: the successor's exit may settle it before Node does.
      if (!this.inFlight.delete(settle)) return
      settled(err ?? undefined)
      done()
      // Room for the next one (at its turn in the ramp): an idle connection need not wait for the drain's sweep.
      this.offerIdleAtNextTurn()
    }
    this.inFlight.set(settle, sending)
    outlet.send(listener, handle).then(() => settle(), settle)
  }

  private offerIdleAtNextTurn (): void {
    const wait = this.nextMoveAt - performance.now()
    if (wait <= 0) {
      this.tracker.offerIdle()
      return
    }
    this.rampTimer ??= setTimeout(() => {
      this.rampTimer = undefined
      this.tracker.offerIdle()
    }, wait).unref()
  }

  /** Resolves once no handoff is on its way. */
  async settled (): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight.values())
  }

  /** The outlet died: the handoffs still queued on it stay here. */
  failAll (reason: string): void {
    for (const settle of [...this.inFlight.keys()]) settle(new Error(reason))
  }

  /** A connection the previous generation handed over: serve it as if we had accepted it. */
  receive (listener: string, handle: object): void {
    const server = this.listeners.serverFor(listener)
    if (server === undefined) {
      this.log.warn({ hotReload: 'handoff-unknown-listener', listener }, `hot-reload: got a connection for ${listener}, which this generation does not listen on; closing it`)
      ;(handle as { close?: () => void }).close?.()
      return
    }
    const socket = socketFromHandle(handle)
    server.emit('connection', socket)
    closeQuietlyIfUnused(socket, server)
  }
}

/**
 * A connection moved in idle waits for its client's next request. Node treats it as just accepted:
 * it arms the server's `timeout` (Fastify's `connectionTimeout`), meant for a first request, and it
 * counts it as waiting for that request, so at `headersTimeout` or `requestTimeout` (whichever comes
 * first) it would answer 408 Request Timeout to a client that was only keeping the connection alive.
 * Idle, it gets what Node gives a connection idle after a response instead: closed quietly at the
 * keep-alive timeout (`keepAliveTimeout` and the server's `keepAliveTimeoutBuffer`), or just before
 * `headersTimeout` or `requestTimeout` when one comes first (Node has no way to count it as idle),
 * unless a request has begun on it by then. Its first request gets the server's `timeout` back when
 * it begins, as Node gives it back to a connection that was idle after a response; from its first
 * response on, Node's own timeouts apply.
 */
function closeQuietlyIfUnused (socket: Socket, server: object): void {
  // An HTTP/1 server (only those move connections); read as Node reads them (not a finite number
  // of ms or below 0: off, or the default buffer).
  const timeouts = server as Partial<Record<'keepAliveTimeout' | 'keepAliveTimeoutBuffer' | 'headersTimeout' | 'requestTimeout' | 'timeout', unknown>>
  const keepAliveTimeout = milliseconds(timeouts.keepAliveTimeout) ?? 0
  const buffer = milliseconds(timeouts.keepAliveTimeoutBuffer) ?? KEEP_ALIVE_TIMEOUT_BUFFER_MS
  const firstRequestTimeouts = [timeouts.headersTimeout, timeouts.requestTimeout].map((value) => milliseconds(value) ?? 0).filter((ms) => ms > 0)
  socket.setTimeout(0)
  const limits = [
    ...(keepAliveTimeout > 0 ? [keepAliveTimeout + buffer] : []),
    ...firstRequestTimeouts.map((ms) => Math.max(1, ms - FIRST_REQUEST_MARGIN_MS))
  ]
  const timer = limits.length === 0
    ? undefined
    : setTimeout(() => {
      if (socket.bytesRead === 0 && !socket.destroyed) socket.destroy()
    }, Math.min(...limits, MAX_TIMER_MS)).unref()
  const connectionTimeout = milliseconds(timeouts.timeout) ?? 0
  beforeNextRequest(socket, () => {
    clearTimeout(timer)
    if (connectionTimeout > 0) socket.setTimeout(connectionTimeout)
  })
  if (timer !== undefined) socket.once('close', () => clearTimeout(timer))
}

function milliseconds (value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined
}

// Node's default keepAliveTimeoutBuffer (Node 20 has it as a constant, not a server property).
const KEEP_ALIVE_TIMEOUT_BUFFER_MS = 1000
// setTimeout() takes a longer delay for 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1
// Node checks headersTimeout and requestTimeout on an interval, never before the timeout itself:
// closing this much earlier is always first.
const FIRST_REQUEST_MARGIN_MS = 100

/** An HTTP/1 connection moves once its parser is between requests; any other can never move (it says so at once). */
export function readyToMove (socket: Socket, server: HttpServer): boolean {
  return !hasHttp1Parser(socket) || parserIsIdle(socket, server)
}

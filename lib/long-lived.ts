// Long-lived connections of a draining generation end the way their protocol means, instead of
// being cut at drainTimeout: a WebSocket of @fastify/websocket gets a close frame 1001 (Going Away),
// a `text/event-stream` response ends (EventSource then reconnects with Last-Event-ID), and any
// other upgraded connection is handed to the app (event 'upgradeDraining') with the time it has
// left. The closes are spread over a window (`closeSpread`), each at a random moment of its own
// slot, so that N clients do not reconnect to the new generation in one burst (Envoy's gradual
// drain, HAProxy's close-spread-time). What is still open at drainTimeout is cut by the drain.
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http'
import type { ServerHttp2Stream } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { isEventStream, openResponses } from './node-internals'
import type { UpgradeDrainingInfo } from './types'

/** The HTTP/2 event streams still open (Http2Sessions). */
export interface Http2EventStreams {
  openEventStreams (): ServerHttp2Stream[]
}

/** Where the 'upgradeDraining' event goes (the generation's Lifecycle). */
export interface UpgradeEvents {
  emit (event: 'upgradeDraining', info: UpgradeDrainingInfo): void
  listenerCount (event: 'upgradeDraining'): number
}

const GOING_AWAY = 1001
const REASONS = { reload: 'server reloading', shutdown: 'server shutting down' }
/** How often a drain looks for long-lived connections begun after it started (on connections it kept). */
const RESCAN_INTERVAL = 100
const WS_OPEN = 1

interface WebSocketLike {
  readyState: number
  close: (code: number, reason: string) => void
}
interface WebSocketServerLike {
  clients?: Set<WebSocketLike>
}

type Close = () => void

/**
 * Moments (ms from the start of the window) for `count` closes: the window is cut into `count`
 * equal slots and each close gets a random moment inside its own slot, so the closes are even
 * over the window (no burst) and still jittered (no lockstep between generations or clients).
 */
export function spreadMoments (count: number, window: number, random: () => number = Math.random): number[] {
  const moments: number[] = []
  if (count === 0) return moments
  const slot = window / count
  for (let i = 0; i < count; i++) moments.push(Math.min(window, slot * (i + random())))
  return moments
}

/** The same items in a random order (Fisher-Yates): which connection gets which slot is random too. */
function shuffled<T> (items: T[]): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

export class LongLivedConnections {
  /** Upgraded connections (any protocol) and the request that asked for each. */
  private readonly upgrades = new Map<Duplex, IncomingMessage>()
  /** Connections, streams and WebSockets already given a moment in this drain. */
  private scheduled = new WeakSet<object>()
  /** This drain's closes, in the order of their moments; `next` is the first not yet done. */
  private queue: Array<{ at: number, close: Close }> = []
  private next = 0
  private timer: NodeJS.Timeout | undefined
  private rescanner: NodeJS.Timeout | undefined
  private deadline = 0
  private reason = REASONS.reload

  constructor (
    private readonly app: FastifyInstance,
    private readonly closeSpread: number,
    private readonly events: UpgradeEvents,
    private readonly http2: Http2EventStreams
  ) {
    // Fastify's extra servers (listen on 'localhost') forward their upgrades to the main server.
    watchUpgrades(app.server, (request, socket) => {
      this.upgrades.set(socket, request)
      socket.once('close', () => this.upgrades.delete(socket))
    })
  }

  /**
   * The drain has begun, with `timeLeft` ms before what is left is cut: every long-lived connection
   * gets its moment in the window; those that begin later (on a connection this generation kept)
   * are closed as soon as they are seen.
   */
  drain (timeLeft: number, servers: Iterable<object>, why: keyof typeof REASONS = 'reload'): void {
    this.stop()
    this.reason = REASONS[why]
    const start = Date.now()
    this.deadline = start + timeLeft
    const window = Math.min(this.closeSpread, timeLeft)
    const found = this.scan(servers)
    const closes = shuffled([...found.webSockets, ...found.eventStreams, ...found.others])
    const moments = spreadMoments(closes.length, window)
    this.queue = closes.map((close, i) => ({ at: start + (moments[i] as number), close }))
    this.next = 0
    if (closes.length > 0) {
      this.app.log.info({ hotReload: 'long-lived-closing', webSockets: found.webSockets.length, eventStreams: found.eventStreams.length, otherUpgrades: found.others.length, closeSpread: window },
        `hot-reload: closing ${found.webSockets.length} WebSocket(s), ${found.eventStreams.length} event stream(s) and ${found.others.length} other upgraded connection(s) over ${window} ms`)
    }
    if (found.others.length > 0 && this.events.listenerCount('upgradeDraining') === 0) {
      this.app.log.warn({ hotReload: 'upgrades-unhandled', otherUpgrades: found.others.length },
        `hot-reload: ${found.others.length} upgraded connection(s) that are not @fastify/websocket's (a ws or socket.io server of the app's own, or another protocol) and no 'upgradeDraining' listener: they are cut at drainTimeout`)
    }
    this.armTimer()
    this.rescanner = setInterval(() => {
      if (Date.now() >= this.deadline) return this.stop()
      // Begun since (a client that came back on a connection kept here): their moment is now.
      const late = this.scan(servers)
      for (const close of [...late.webSockets, ...late.eventStreams, ...late.others]) this.run(close)
    }, RESCAN_INTERVAL)
    this.rescanner.unref()
  }

  /**
   * The drain is cut before its time (too many generations drain): every long-lived connection whose
   * moment has not come yet is closed now, so that it ends with its close (1001), not reset by the cut.
   */
  closeNow (servers: Iterable<object>): void {
    if (this.rescanner === undefined) return
    const due = this.queue.slice(this.next)
    this.next = this.queue.length
    clearTimeout(this.timer)
    this.timer = undefined
    const late = this.scan(servers)
    for (const close of [...due.map((item) => item.close), ...late.webSockets, ...late.eventStreams, ...late.others]) this.run(close)
  }

  /** The generation serves again (or is gone): nothing more is closed. */
  stop (): void {
    clearTimeout(this.timer)
    clearInterval(this.rescanner)
    this.timer = undefined
    this.rescanner = undefined
    this.queue = []
    this.next = 0
    this.scheduled = new WeakSet()
  }

  private scan (servers: Iterable<object>): { webSockets: Close[], eventStreams: Close[], others: Close[] } {
    const found = { webSockets: [] as Close[], eventStreams: [] as Close[], others: [] as Close[] }
    const webSocketServer = (this.app as unknown as { websocketServer?: WebSocketServerLike }).websocketServer
    for (const ws of webSocketServer?.clients ?? []) {
      if (ws.readyState === WS_OPEN && this.firstTime(ws)) found.webSockets.push(() => { if (ws.readyState === WS_OPEN) ws.close(GOING_AWAY, this.reason) })
    }
    for (const server of servers) {
      for (const response of openResponses(server)) {
        if (!response.writableEnded && isEventStream(response) && this.firstTime(response)) found.eventStreams.push(() => endStream(response))
      }
    }
    // Over HTTP/2 an event stream is one stream of a session: it ends with END_STREAM, the session
    // closes after its GOAWAY once its streams have ended.
    for (const stream of this.http2.openEventStreams()) {
      if (this.firstTime(stream)) found.eventStreams.push(() => endStream(stream))
    }
    for (const [socket, request] of this.upgrades) {
      // With @fastify/websocket, a WebSocket upgrade is its server's (a client once the handshake is over).
      if (webSocketServer !== undefined && /websocket/i.test(request.headers.upgrade ?? '')) continue
      if (this.firstTime(socket)) found.others.push(() => this.handToApp(socket, request))
    }
    return found
  }

  private firstTime (key: object): boolean {
    if (this.scheduled.has(key)) return false
    this.scheduled.add(key)
    return true
  }

  private handToApp (socket: Duplex, request: IncomingMessage): void {
    if (socket.destroyed) return
    try {
      this.events.emit('upgradeDraining', { socket, request, timeLeft: Math.max(0, this.deadline - Date.now()) })
    } catch (err) {
      this.app.log.error({ hotReload: 'upgrade-draining-threw', err }, "hot-reload: an 'upgradeDraining' listener threw")
    }
  }

  /** One timer, for the next close due. */
  private armTimer (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    const next = this.queue[this.next]
    if (next === undefined) return
    this.timer = setTimeout(() => this.runDue(), Math.max(0, next.at - Date.now()))
    this.timer.unref()
  }

  private runDue (): void {
    const now = Date.now()
    for (let item = this.queue[this.next]; item !== undefined && item.at <= now; item = this.queue[this.next]) {
      this.next++
      this.run(item.close)
    }
    this.armTimer()
  }

  /** A close that throws (a library's state we did not expect) must not end the drain, or the process. */
  private run (close: Close): void {
    try {
      close()
    } catch (err) {
      this.app.log.warn({ hotReload: 'long-lived-close-failed', err }, 'hot-reload: could not close a long-lived connection; it is cut at drainTimeout if still open')
    }
  }
}

/** Ends an event stream: the last chunk goes out, the client sees a clean end and reconnects. */
function endStream (response: ServerResponse | ServerHttp2Stream): void {
  if (response.writableEnded || response.destroyed) return
  // The app's own timer may still write once before it sees the close: that is no crash.
  response.on('error', () => {})
  response.end()
}

/**
 * Calls `onUpgrade` for every upgrade of `server`, but listens only once someone else does: with no
 * 'upgrade' listener, Node answers an upgrade request as an ordinary request, and a listener of
 * ours alone would leave it hanging.
 */
function watchUpgrades (server: HttpServer, onUpgrade: (request: IncomingMessage, socket: Duplex) => void): void {
  if (server.listenerCount('upgrade') > 0) {
    server.prependListener('upgrade', onUpgrade)
    return
  }
  const onNewListener = (event: string | symbol): void => {
    if (event !== 'upgrade') return
    server.off('newListener', onNewListener)
    server.prependListener('upgrade', onUpgrade)
  }
  server.on('newListener', onNewListener)
}

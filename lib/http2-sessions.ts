// HTTP/2 has no `Connection: close`: a draining generation ends each session with GOAWAY instead,
// and the client opens its next session on the new generation. The GOAWAY goes out only once the
// streams the client had already sent have arrived (see http2-graceful-goaway.ts), so that none is
// refused; streams already open finish here. What is still open at the drain's deadline is cut
// with the other connections (the ConnectionTracker).
//
// Node 24 and 26 (not 20) close every session when their server stops listening: server.close()
// calls session.close(), an immediate GOAWAY. So a session's close() is taken over: once its server
// no longer listens, close() starts the graceful sequence instead; while it listens, it is Node's.
import type { Http2Session, ServerHttp2Stream } from 'node:http2'
import type { EventEmitter } from 'node:events'
import { gracefulGoaway, type StreamEnds } from './http2-graceful-goaway'
import { isEventStreamType } from './node-internals'

/** How long a sequence started by a server's close() (not by a drain) waits for PING answers. */
const CLOSE_TIME_LIMIT = 5_000

interface Watched {
  ends: StreamEnds
  /** Its streams still open. */
  streams: Set<ServerHttp2Stream>
  closeNow: () => void
  goingAway?: Promise<void>
}

export class Http2Sessions {
  private readonly sessions = new Map<Http2Session, Watched>()
  private readonly servers = new WeakSet<EventEmitter>()
  /** performance.now() past which no session waits any longer for its GOAWAY; set by goAway(). */
  private deadline: number | undefined

  /** Any server may be watched (once): only HTTP/2 servers emit 'session'. */
  watch (server: EventEmitter): void {
    if (this.servers.has(server)) return
    this.servers.add(server)
    const listening = (): boolean => (server as { listening?: boolean }).listening === true
    server.on('session', (session: Http2Session) => {
      const nativeClose = session.close
      const watched: Watched = { ends: { lastEnded: 0, longestPause: 0 }, streams: new Set(), closeNow: () => { nativeClose.call(session) } }
      this.sessions.set(session, watched)
      session.once('close', () => this.sessions.delete(session))
      // When the session's last response ended: the GOAWAY waits until the client has answered it.
      session.on('stream', (stream: ServerHttp2Stream) => {
        // The client's pause before this request, when it answers the last response: measured
        // with other streams open too (a client with a long request open, or several loops, has
        // streams open all the time; its pauses are what a loaded machine stretches).
        if (watched.ends.lastEnded > 0) {
          const pause = performance.now() - watched.ends.lastEnded
          if (pause > watched.ends.longestPause) watched.ends.longestPause = pause
        }
        watched.streams.add(stream)
        stream.once('close', () => {
          watched.ends.lastEnded = performance.now()
          watched.streams.delete(stream)
        })
      })
      session.close = (callback?: () => void): void => {
        if (listening()) return nativeClose.call(session, callback)
        if (typeof callback === 'function') session.once('close', callback)
        void this.goAwayOne(session, watched)
      }
      // A session that came in as the drain began (accepted just before) goes the same way.
      if (this.deadline !== undefined && !listening()) void this.goAwayOne(session, watched)
    })
  }

  /**
   * Sends every session away (GOAWAY), each as soon as no stream of its client can cross it; each
   * session closes once its open streams have finished. Waits at most `timeLimit` ms for that
   * moment: then the GOAWAY goes anyway. Resolves when every GOAWAY has been sent.
   */
  async goAway (timeLimit = CLOSE_TIME_LIMIT): Promise<void> {
    this.deadline = performance.now() + timeLimit
    await Promise.all([...this.sessions].map(([session, watched]) => this.goAwayOne(session, watched)))
  }

  /** Streams whose response is an event stream (`text/event-stream`) still being written. */
  openEventStreams (): ServerHttp2Stream[] {
    const found: ServerHttp2Stream[] = []
    for (const watched of this.sessions.values()) {
      for (const stream of watched.streams) {
        if (stream.headersSent && !stream.writableEnded && isEventStreamType(stream.sentHeaders['content-type'])) found.push(stream)
      }
    }
    return found
  }

  private goAwayOne (session: Http2Session, watched: Watched): Promise<void> {
    if (watched.goingAway === undefined) {
      const startedAt = performance.now()
      // The drain's deadline once goAway() has set it (not one of an earlier drain, given up).
      const deadline = (): number => this.deadline !== undefined && this.deadline > startedAt ? this.deadline : startedAt + CLOSE_TIME_LIMIT
      watched.goingAway = gracefulGoaway(session, watched.ends, deadline, watched.closeNow)
    }
    return watched.goingAway
  }
}

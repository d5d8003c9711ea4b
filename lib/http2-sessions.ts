// HTTP/2 has no `Connection: close`: a draining generation ends each session with GOAWAY instead,
// and the client opens its next session on the new generation. The GOAWAY goes out only once the
// streams the client had already sent have arrived (see http2-graceful-goaway.ts), so that none is
// refused; streams already open finish here. What is still open at the drain's deadline is cut
// with the other connections (the ConnectionTracker).
import type { Http2Session, ServerHttp2Stream } from 'node:http2'
import type { EventEmitter } from 'node:events'
import { gracefulGoaway, type StreamEnds } from './http2-graceful-goaway'

export class Http2Sessions {
  private readonly sessions = new Map<Http2Session, StreamEnds>()
  private readonly servers = new WeakSet<EventEmitter>()
  /** performance.now() past which no session waits any longer for its GOAWAY; set by goAway(). */
  private deadline: number | undefined

  /** Any server may be watched (once): only HTTP/2 servers emit 'session'. */
  watch (server: EventEmitter): void {
    if (this.servers.has(server)) return
    this.servers.add(server)
    server.on('session', (session: Http2Session) => {
      const ends: StreamEnds = { lastEnded: 0 }
      this.sessions.set(session, ends)
      session.once('close', () => this.sessions.delete(session))
      // When the session's last response ended: the GOAWAY waits until the client has answered it.
      const ended = (): void => { ends.lastEnded = performance.now() }
      session.on('stream', (stream: ServerHttp2Stream) => { stream.once('close', ended) })
      // A session that came in as the drain began (accepted just before) goes the same way; not
      // one on a server that listens again (the drain was given up).
      const listening = (server as { listening?: boolean }).listening === true
      if (this.deadline !== undefined && !listening) void gracefulGoaway(session, ends, this.deadline)
    })
  }

  /**
   * Sends every session away (GOAWAY), each as soon as no stream of its client can cross it; each
   * session closes once its open streams have finished. Waits at most `timeLimit` ms for that
   * moment: then the GOAWAY goes anyway. Resolves when every GOAWAY has been sent.
   */
  async goAway (timeLimit = 5_000): Promise<void> {
    this.deadline = performance.now() + timeLimit
    const deadline = this.deadline
    await Promise.all([...this.sessions].map(([session, ends]) => gracefulGoaway(session, ends, deadline)))
  }
}

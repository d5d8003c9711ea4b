// HTTP/2 has no `Connection: close`: a draining generation closes each session with GOAWAY instead.
// The client opens its next session on the new generation; streams it had already sent are
// finished here. A stream that crossed the GOAWAY on the wire is refused (REFUSED_STREAM): the
// protocol's word that it was not processed and can be retried (RFC 9113 §8.7), as browsers and
// gRPC clients do. (nghttp2's shutdown notice, which would avoid even that, is not exposed by Node.)
import type { Http2Session } from 'node:http2'
import type { EventEmitter } from 'node:events'

export class Http2Sessions {
  private readonly sessions = new Set<Http2Session>()
  private readonly servers = new WeakSet<EventEmitter>()

  /** Any server may be watched (once): only HTTP/2 servers emit 'session'. */
  watch (server: EventEmitter): void {
    if (this.servers.has(server)) return
    this.servers.add(server)
    server.on('session', (session: Http2Session) => {
      this.sessions.add(session)
      session.once('close', () => this.sessions.delete(session))
    })
  }

  /** GOAWAY to every session; each closes once its open streams have finished. */
  goAway (): void {
    for (const session of this.sessions) if (!session.closed && !session.destroyed) session.close()
  }
}

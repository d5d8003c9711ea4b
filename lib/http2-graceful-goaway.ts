// Ends one HTTP/2 session without refusing a stream the client had already sent.
//
// RFC 9113 §6.8 does it with a first GOAWAY (last stream id 2^31-1) that the server sends while
// still taking new streams, then the real GOAWAY a round trip later. Node cannot send that first
// GOAWAY: `session.goaway()` is nghttp2_submit_goaway, after which nghttp2 silently ignores every
// new stream whatever the last stream id says (and Node stops reading once the session is idle),
// and nghttp2_submit_shutdown_notice is not exposed. So the session keeps taking streams and no
// response goes out until the one GOAWAY is sent:
//  1. streams that arrive from now on are held back from the app (the session's 'stream' event
//     waits), so no response can prompt the client to send another request;
//  2. PINGs, one after the other, until no stream has ended from the PING before the last one up
//     to the last PING's ACK, and none for QUIET_MS: every request the client sent in answer to a
//     response has arrived (an ACK can overtake requests the client sent in the same turn: hence
//     one PING more; a client that pauses first, on a timer: hence the quiet time, from its own pauses);
//  3. session.close(): GOAWAY with the last stream id nghttp2 received, which covers all of them;
//     then the held streams go to the app, and the session ends when its streams have.
// A client that opens streams on a timer, not in answer to responses, can still have one cross
// the GOAWAY (it is refused, REFUSED_STREAM); only the RFC's first GOAWAY would avoid that.
import type { Http2Session } from 'node:http2'

type Emit = Http2Session['emit']
type StreamEvent = Parameters<Emit>

/** A client that has not answered a PING in this long is not waited for (its streams are held). */
const PING_LIMIT = 2_000

/**
 * How long after the session's last response ended the GOAWAY waits at least. On loopback the PING
 * round trips take less than a client's own pause before its next request (a `setTimeout(0)` is
 * about a millisecond, tens on a loaded machine): without this, such a request could be on the
 * wire as the GOAWAY leaves, and be refused. Twice the longest pause this client has made between a response and its next
 * request, when longer (a loaded machine stretches a timer), up to MAX_QUIET_MS: a client that
 * pauses longer is between bursts. Held streams wait this much longer at most.
 */
const QUIET_MS = 50
const MAX_QUIET_MS = 250

/** Kept for every session: when its last stream ended, and its client's longest pause before the next. */
export interface StreamEnds {
  /** performance.now() when a stream last ended. */
  lastEnded: number
  /** The longest time (ms) from the session's last stream ending to its client's next stream. */
  longestPause: number
}

/** How long the session must have been quiet before its GOAWAY may go out. */
export function quietMs (ends: StreamEnds): number {
  return Math.min(MAX_QUIET_MS, Math.max(QUIET_MS, 2 * ends.longestPause))
}

/**
 * `deadline()`: performance.now() past which no PING is waited for (read each round: a drain may
 * set it after the sequence began). `closeNow`: Node's own session.close() (GOAWAY with the last
 * stream received, then closes once the open streams have ended).
 */
export async function gracefulGoaway (session: Http2Session, ends: StreamEnds, deadline: () => number, closeNow: () => void): Promise<void> {
  if (session.closed || session.destroyed) return
  const held: StreamEvent[] = []
  const emit = session.emit
  // An instance property in front of EventEmitter's: Node emits 'stream' through session.emit.
  session.emit = function (this: Http2Session, ...args: StreamEvent) {
    if (args[0] === 'stream') {
      held.push(args)
      return true
    }
    return emit.apply(this, args)
  } as Emit
  const release = (): void => {
    delete (session as { emit?: Emit }).emit
    for (const args of held) session.emit(...args)
  }
  try {
    let previousPing: number | undefined
    for (;;) {
      const sentAt = performance.now()
      if (!await ping(session, Math.min(PING_LIMIT, deadline() - sentAt))) break
      if (previousPing !== undefined && ends.lastEnded < previousPing) {
        const quietFor = performance.now() - ends.lastEnded
        const enough = quietMs(ends)
        if (quietFor >= enough) break
        // Quiet for a round trip, not yet for long enough: wait for the rest, then check by PING again.
        await sleep(Math.min(enough - quietFor, deadline() - performance.now()))
      }
      previousPing = sentAt
    }
  } finally {
    // The client may have closed it meanwhile (Node closes a server session that gets a GOAWAY).
    if (!session.closed && !session.destroyed) closeNow()
    // A destroyed session's streams are gone (cut at the deadline): nothing to hand the app.
    if (session.destroyed) held.length = 0
    release()
  }
}

/** One PING and its ACK; false when there was none within `timeLimit` ms (or the session is gone). */
function ping (session: Http2Session, timeLimit: number): Promise<boolean> {
  if (timeLimit <= 0 || session.closed || session.destroyed) return Promise.resolve(false)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeLimit)
    timer.unref()
    const acked = (err: Error | null): void => {
      clearTimeout(timer)
      resolve(err === null)
    }
    try {
      if (!session.ping(acked)) acked(new Error('too many PINGs without an ACK'))
    } catch (err) {
      acked(err as Error)
    }
  })
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)).unref())
}

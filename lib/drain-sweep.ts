// The drain's periodic sweep over a ConnectionTracker's connections: an idle one that may move is
// offered to the handoff again, and one that stays here is closed once idle for `idleGrace` ms.
// Apart from the tracker because it is the only part that runs on a timer; it owns that timer and
// the grace, and reads (never adds or removes) the tracker's connections.
import type { Socket } from 'node:net'
import type { ConnectionState } from './connection-state'
import { hasHttp1Parser, parserIsIdle } from './node-internals'

export class DrainSweep {
  private timer: NodeJS.Timeout | undefined
  private idleGrace = 0

  constructor (
    /** The tracker's drain states; owned and changed by the tracker. */
    private readonly connections: ReadonlyMap<Socket, ConnectionState>,
    private readonly staysHere: (state: ConnectionState) => boolean,
    private readonly tryHandoff: (socket: Socket, state: ConnectionState) => void
  ) {}

  /** A drain starts: its grace, and a first sweep in the same tick. */
  begin (idleGrace: number): void {
    this.idleGrace = idleGrace
    this.sweep()
  }

  /** Sweeps every 10 to 100 ms (a quarter of the grace) until stopped, unless already running. */
  run (): void {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => this.sweep(), Math.max(10, Math.min(100, this.idleGrace / 4)))
    this.timer.unref()
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private sweep (): void {
    const now = Date.now()
    const expired: Socket[] = []
    for (const [socket, state] of [...this.connections]) {
      if (inUse(socket, state, now)) continue
      if (!this.staysHere(state)) this.tryHandoff(socket, state)
      else if (now - state.idleSince >= this.idleGrace) expired.push(socket)
    }
    // After this process was stalled (a loaded machine, GC, a long synchronous task), a request the
    // client sent in time can still wait unread in the kernel, and closing its connection now would
    // reset it: close only once the event loop has read I/O since this decision.
    if (expired.length > 0) afterNextPoll(() => this.closeExpired(expired))
  }

  private closeExpired (sockets: Socket[]): void {
    const now = Date.now()
    for (const socket of sockets) {
      const state = this.connections.get(socket)
      if (state === undefined || socket.destroyed || inUse(socket, state, now)) continue
      if (this.staysHere(state) && now - state.idleSince >= this.idleGrace) socket.destroy()
    }
  }
}

/** True when the connection is not idle: a response under way, upgraded, or a request on its way. */
function inUse (socket: Socket, state: ConnectionState, now: number): boolean {
  if (state.busy > 0 || state.upgraded) return true
  // A request whose head has begun arriving (its client paused in the middle): Node parsed part of
  // it, and the 'request' event that would count it comes once the head is complete.
  if (hasHttp1Parser(socket) && !parserIsIdle(socket, state.server)) return true
  // Bytes read since the last response: a request is on its way, not idle.
  if (socket.bytesRead !== state.bytesReadWhenIdle) {
    state.bytesReadWhenIdle = socket.bytesRead
    state.idleSince = now
    return true
  }
  return false
}

/**
 * Runs `then` in a check phase that comes after at least one poll for I/O from now. One
 * setImmediate is not enough: from the timers phase the next poll comes before it, but a sweep run
 * from an I/O callback (drain() starts when the successor's IPC message is read) would get this
 * iteration's check phase, before any new poll. An immediate queued from an immediate waits for the
 * next iteration, so two always straddle a poll.
 */
function afterNextPoll (then: () => void): void {
  setImmediate(() => setImmediate(then))
}

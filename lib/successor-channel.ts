// What a parent says to a child over IPC (a successor, a supervisor's worker), and a committed
// successor's channel: the previous generation hands it connections and hears of its drain there.
import type { ChildProcess } from 'node:child_process'
import { unwrap, wrap, type ChildMessage, type ParentMessage } from './ipc'

export function send (child: ChildProcess, message: ParentMessage, then?: () => void): void {
  if (!child.connected) {
    then?.()
    return
  }
  child.send(wrap(message), (err) => {
    if (err !== null && err !== undefined) child.emit('error', err)
    then?.()
  })
}

/**
 * The successor is the serving generation now. The channel stays: the previous generation (or the
 * supervisor) cuts it when its drain is over. `keepChannel` tells a successor that runs an older
 * release of this plugin not to cut it itself; `passAcks` (the supervisor) that each connection it
 * hands up is answered once passed on ('connection-passed'); `exitWithinMs` (standalone) by when we
 * will have exited.
 */
export function commit (child: ChildProcess, supervisor: boolean, exitWithinMs?: number): SuccessorChannel {
  send(child, supervisor
    ? { type: 'commit', keepChannel: true, passAcks: true }
    : { type: 'commit', keepChannel: true, ...(exitWithinMs !== undefined && { exitWithinMs }) })
  return new SuccessorChannel(child)
}

/** A committed successor's channel, until our drain is over. */
export class SuccessorChannel {
  /** False once the successor said its own drain is over ('handoffs-end'). */
  private handoffsOpen = true

  constructor (readonly child: ChildProcess) {}

  /** It takes handed-over connections: alive, and its own drain is not over. */
  get takesConnections (): boolean {
    return this.handoffsOpen && this.child.connected
  }

  /** Its drain is over: no connection goes to it from now on, and it hears so after every one sent before. */
  endHandoffs (): void {
    this.handoffsOpen = false
    send(this.child, { type: 'handoffs-ended' })
  }

  onExit (listener: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    this.child.once('exit', listener)
  }

  onMessage (listener: (message: ChildMessage) => void): void {
    this.child.on('message', (raw: unknown) => {
      const message = unwrap(raw) as ChildMessage | undefined
      if (message !== undefined) listener(message)
    })
  }

  /** An idle keep-alive connection for the successor; resolves once its handle is on its way. */
  sendConnection (listener: string, handle: object): Promise<void> {
    return new Promise((resolve, reject) => {
      this.child.send(wrap({ type: 'connection', listener }), handle as never, (err) => err ? reject(err) : resolve())
    })
  }

  /** Our drain is over: the successor runs on by itself. */
  release (): void {
    if (this.child.connected) this.child.disconnect()
    this.child.unref()
  }
}

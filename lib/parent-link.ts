// The successor's side of the IPC channel: report ready (or failure) to the generation that spawned
// us and learn its verdict. An abort that arrives before the plugin runs ends the process at once:
// nothing has been adopted, so nothing is lost.
import { unwrap, wrap, type ChildMessage, type ParentMessage } from './ipc'

export type Verdict = 'commit' | 'abort'

export class ParentLink {
  private verdict: Verdict | undefined
  private readonly waiting: Array<(verdict: Verdict) => void> = []
  private abortHandler: () => void = () => process.exit(1)

  constructor () {
    process.on('message', (raw: unknown) => {
      const message = unwrap(raw) as ParentMessage | undefined
      if (message === undefined) return
      if (message.type === 'commit' || message.type === 'abort') this.settle(message.type)
    })
    // A parent that is gone can no longer serve: we are the serving generation.
    process.once('disconnect', () => this.settle('commit'))
  }

  static connect (): ParentLink | undefined {
    return typeof process.send === 'function' && process.connected ? new ParentLink() : undefined
  }

  /** Called instead of exiting when the parent aborts us. */
  onAbort (handler: () => void): void {
    this.abortHandler = handler
  }

  /** Reports ready and resolves with the parent's verdict. */
  ready (pid: number, generation: number): Promise<Verdict> {
    this.send({ type: 'ready', pid, generation })
    return new Promise((resolve) => {
      if (this.verdict !== undefined) resolve(this.verdict)
      else this.waiting.push(resolve)
    })
  }

  failed (message: string): void {
    this.send({ type: 'failed', message })
  }

  private send (message: ChildMessage): void {
    if (process.connected && process.send !== undefined) process.send(wrap(message), undefined, {}, () => {})
  }

  private settle (verdict: Verdict): void {
    if (this.verdict !== undefined) return
    this.verdict = verdict
    if (verdict === 'commit') {
      if (process.connected) process.disconnect()
    } else {
      this.abortHandler()
    }
    for (const resolve of this.waiting.splice(0)) resolve(verdict)
  }
}

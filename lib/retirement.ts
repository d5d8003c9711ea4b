// An old generation's probation over the successor that took over from it. Until the successor has
// proved itself, the old generation keeps a copy of each listening socket, not accepting on it (in
// standalone mode the kernel socket would otherwise live in the successor alone, and die with it).
// Should the successor fail meanwhile, `lost` says why, and the old generation can take the sockets
// back. Who decides is the caller's business: a timer and the child's exit (standalone), or the
// supervisor's word (supervised).
import type { ChildProcess } from 'node:child_process'
import { Probation } from './probation'
import type { ListenerCopy } from './successor'

export class Retirement {
  /** Resolves when the probation is over (or was ended early). */
  readonly over: Promise<void>
  /** Resolves with a reason if the successor fails during the probation; never otherwise. */
  readonly lost: Promise<string>
  private ended = false
  private endOver: () => void = () => {}
  private loseWith: (reason: string) => void = () => {}
  private probation: Probation | undefined
  private copies: ListenerCopy[] = []

  constructor (public successorPid: number | undefined) {
    this.over = new Promise((resolve) => { this.endOver = resolve })
    this.lost = new Promise((resolve) => { this.loseWith = resolve })
  }

  /** Standalone: watches our own child for `probation` ms, with the socket copies it sent us. */
  static watchChild (child: Pick<ChildProcess, 'once'>, successorPid: number, probation: number, copies: ListenerCopy[]): Retirement {
    const retirement = new Retirement(successorPid)
    // Without a copy of the sockets there is nothing to go back to.
    if (probation === 0 || copies.length === 0) {
      for (const copy of copies) copy.handle.close()
      retirement.endProbation()
      return retirement
    }
    for (const copy of copies) retirement.addCopy(copy)
    const since = performance.now()
    retirement.probation = new Probation(probation, () => retirement.endProbation())
    child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      const how = signal === null ? `code ${code}` : `signal ${signal}`
      retirement.fail(`the successor (pid ${successorPid}) exited with ${how} ${Math.round(performance.now() - since)} ms after it took over`)
    })
    return retirement
  }

  addCopy (copy: ListenerCopy): void {
    if (this.ended) copy.handle.close()
    else this.copies.push(copy)
  }

  /** The successor has proved itself, or has moved on to a successor of its own. */
  endProbation (): void {
    if (this.ended) return
    this.ended = true
    this.probation?.end()
    this.endOver()
  }

  /** The successor failed within its probation. */
  fail (reason: string): void {
    if (!this.ended) this.loseWith(reason)
  }

  /** The copies, by listener address, for the old generation to listen on again. */
  takeCopies (): Map<string, ListenerCopy['handle']> {
    const byAddress = new Map(this.copies.map((copy) => [copy.address, copy.handle]))
    this.copies = []
    this.endProbation()
    return byAddress
  }

  /** The probation is over: the copies go. */
  release (): void {
    this.endProbation()
    for (const copy of this.copies.splice(0)) copy.handle.close()
  }
}

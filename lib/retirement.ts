// The old generation's watch over the successor it committed (standalone mode). Until the successor
// has served for `probation` ms we keep a copy of each listening socket, not accepting on it: the
// kernel socket would otherwise live in the successor alone, and die with it. Should the successor
// exit meanwhile, `lost` says why, and the old generation can take the sockets back.
import type { ChildProcess } from 'node:child_process'
import type { ListenerCopy } from './successor'

export class Retirement {
  /** Resolves when the probation is over (or was ended early). */
  readonly over: Promise<void>
  /** Resolves with a reason if the successor exits during the probation; never otherwise. */
  readonly lost: Promise<string>
  private ended = false
  private endOver: () => void = () => {}
  private readonly timer: NodeJS.Timeout | undefined
  private copies: ListenerCopy[]

  constructor (child: ChildProcess, readonly successorPid: number, probation: number, copies: ListenerCopy[]) {
    // Without a copy of the sockets there is nothing to go back to.
    const watching = probation > 0 && copies.length > 0
    this.copies = watching ? copies : []
    if (!watching) for (const copy of copies) copy.handle.close()
    this.over = new Promise((resolve) => { this.endOver = resolve })
    const since = performance.now()
    this.lost = new Promise((resolve) => {
      if (!watching) return
      child.once('exit', (code, signal) => {
        if (this.ended) return
        const how = signal === null ? `code ${code}` : `signal ${signal}`
        resolve(`the successor (pid ${successorPid}) exited with ${how} ${Math.round(performance.now() - since)} ms after it took over`)
      })
    })
    if (watching) this.timer = setTimeout(() => this.endProbation(), probation)
    else this.endProbation()
  }

  /** The successor has proved itself, or has moved on to a successor of its own. */
  endProbation (): void {
    if (this.ended) return
    this.ended = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.endOver()
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

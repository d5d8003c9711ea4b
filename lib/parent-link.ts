// A generation's side of the IPC channel to whoever started it: the previous generation
// (standalone) or the supervisor. It reports ready (or failure), learns the verdict, and in
// supervised mode keeps the channel for drain orders, reload requests and socket handles.
// An abort that arrives before the plugin runs ends the process at once: nothing has been adopted,
// so nothing is lost.
import type { Server } from 'node:net'
import { hotReloadError } from './errors'
import { listeningHandle } from './node-internals'
import { unwrap, wrap, type ChildMessage, type ParentMessage, type WireReloadResult } from './ipc'
import type { ReloadResult } from './types'

export type Verdict = 'commit' | 'abort'

export class ParentLink {
  private verdict: Verdict | undefined
  private readonly waiting: Array<(verdict: Verdict) => void> = []
  private readonly reloads = new Map<number, (result: ReloadResult) => void>()
  private nextReloadId = 1
  private abortHandler: () => void = () => process.exit(1)
  private drainHandler: (probation: boolean) => void = () => process.exit(0)
  private cutHandler: () => void = () => {}
  private listenerHandler: (address: string, handle: object) => void = (_address, handle) => closeHandle(handle)
  private retireHandler: () => void = () => {}
  private resumeHandler: (successorPid: number, reason: string) => void = () => {}
  private connectionHandler: (listener: string, handle: object) => void = (_listener, handle) => closeHandle(handle)
  private keepChannel = false

  constructor (readonly supervised: boolean) {
    process.on('message', (raw: unknown, handle: unknown) => {
      const message = unwrap(raw) as ParentMessage | undefined
      if (message === undefined) return
      if (message.type === 'connection') {
        if (typeof handle === 'object' && handle !== null) this.connectionHandler(message.listener, handle)
        return
      }
      if (message.type === 'listener') {
        if (typeof handle === 'object' && handle !== null) this.listenerHandler(message.address, handle)
        return
      }
      if (message.type === 'commit') this.keepChannel = message.keepChannel === true
      if (message.type === 'commit' || message.type === 'abort') this.settle(message.type)
      else if (message.type === 'drain') this.drainHandler(message.probation === true)
      else if (message.type === 'cut') this.cutHandler()
      else if (message.type === 'retire') this.retireHandler()
      else if (message.type === 'resume') this.resumeHandler(message.successorPid, message.reason)
      else if (message.type === 'reload-result') this.reloads.get(message.id)?.(fromWire(message.result))
    })
    // A parent that is gone can no longer serve: we are the serving generation.
    process.once('disconnect', () => {
      this.settle('commit')
      for (const [id, resolve] of this.reloads) {
        resolve({ ok: false, generation: 0, pid: process.pid, durationMs: 0, error: hotReloadError('HOT_RELOAD_NOT_SERVING', 'the supervisor is gone') })
        this.reloads.delete(id)
      }
    })
  }

  static connect (supervised: boolean): ParentLink | undefined {
    return typeof process.send === 'function' && process.connected ? new ParentLink(supervised) : undefined
  }

  /** Called instead of exiting when the parent aborts us. */
  onAbort (handler: () => void): void {
    this.abortHandler = handler
  }

  /** Called with each keep-alive connection the previous generation hands over. */
  onConnection (handler: (listener: string, handle: object) => void): void {
    this.connectionHandler = handler
  }

  /** Hands an idle connection (its raw handle) up to the supervisor; resolves once it is sent. */
  sendConnection (listener: string, handle: object): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!process.connected || process.send === undefined) return reject(new Error('no channel to the supervisor'))
      process.send(wrap({ type: 'connection', listener }), handle as Server, {}, (err) => err ? reject(err) : resolve())
    })
  }

  /** Supervised mode: called when the supervisor says a successor serves now. */
  onDrain (handler: (probation: boolean) => void): void {
    this.drainHandler = handler
  }

  /**
   * Supervised mode, during a probation: copies of the listening sockets, then the verdict on the
   * successor ('retire': it proved itself; 'resume': it died, serve again).
   */
  onProbation (handlers: { listener: (address: string, handle: object) => void, retire: () => void, resume: (successorPid: number, reason: string) => void }): void {
    this.listenerHandler = handlers.listener
    this.retireHandler = handlers.retire
    this.resumeHandler = handlers.resume
  }

  /** Supervised mode: called when the supervisor says too many generations drain (end the drain now). */
  onCut (handler: () => void): void {
    this.cutHandler = handler
  }

  /** We shut down on purpose: whoever watches our probation must not take it for a failure. */
  sendStopping (): void {
    this.send({ type: 'stopping' })
  }

  /** Standalone: tells the previous generation, if it still runs, how many newer generations drain now. */
  sendBehind (newer: number): void {
    this.send({ type: 'behind', newer })
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

  /**
   * Hands a listening socket to the parent, which keeps it without accepting on it: one we bound
   * (supervised mode), or a copy of an adopted one for the probation (standalone).
   */
  sendListener (address: string, server: Server): Promise<void> {
    const handle = listeningHandle(server)
    return new Promise((resolve, reject) => {
      if (!process.connected || process.send === undefined) return reject(new Error('no channel to the supervisor'))
      process.send(wrap({ type: 'listener', address }), handle as Server, {}, (err) => err ? reject(err) : resolve())
    })
  }

  /** Supervised mode: asks the supervisor for a reload and resolves with its result. */
  requestReload (): Promise<ReloadResult> {
    const id = this.nextReloadId++
    return new Promise((resolve) => {
      this.reloads.set(id, (result) => { this.reloads.delete(id); resolve(result) })
      this.send({ type: 'reload-request', id })
    })
  }

  private send (message: ChildMessage): void {
    if (process.connected && process.send !== undefined) process.send(wrap(message), undefined, {}, () => {})
  }

  private settle (verdict: Verdict): void {
    if (this.verdict !== undefined) return
    this.verdict = verdict
    if (verdict === 'commit') {
      // Standalone: cut the channel so that the old generation's exit is not held up by it.
      if (!this.supervised && !this.keepChannel && process.connected) process.disconnect()
    } else {
      this.abortHandler()
    }
    for (const resolve of this.waiting.splice(0)) resolve(verdict)
  }
}

function fromWire (result: WireReloadResult): ReloadResult {
  const { error, ...rest } = result
  if (error === undefined) return rest
  return { ...rest, error: hotReloadError(error.code as Parameters<typeof hotReloadError>[0], error.message) }
}

function closeHandle (handle: object): void {
  const closable = handle as { close?: () => void }
  if (typeof closable.close === 'function') closable.close()
}

// A generation's whole view of whoever started it: the previous generation (standalone) or the
// supervisor. It reports ready (or failure), learns the verdict, and afterwards carries drain
// orders, reload requests and socket handles. Until the generation subscribes, an abort ends the
// process at once (nothing has been adopted, so nothing is lost) and handles that come are closed.
import type { Server } from 'node:net'
import { listeningHandle } from './node-internals'
import { unwrap, wrap, type ChildMessage, type ParentMessage } from './ipc'
import { preloadWatches, reportCrashes, stopPreloadWatch } from './crash-report'
import type { ProcessPort } from './process-port'
import { fromWire, notServing } from './reload-result'
import type { ReloadResult } from './types'
import { PACKAGE_VERSION } from './package-version'

export type Verdict = 'commit' | 'abort'

/** How long a connection handed up waits for the supervisor's 'connection-passed' at most. */
const PASS_ACK_LIMIT_MS = 5_000
/** How long a predecessor has to answer 'handoffs-end' (one of an older release never does). */
const HANDOFFS_END_LIMIT_MS = 1_000

/** What the parent may ask of a generation once it runs; each has a safe default until subscribed. */
export interface ParentOrders {
  abort: () => void
  /** Supervised: a successor serves now; drain (and, with `probation`, wait for retire or resume). */
  drain: (probation: boolean, rampMs: number | undefined) => void
  cut: () => void
  /** A copy of a listening socket for a resume (supervised probation). */
  listener: (address: string, handle: object) => void
  retire: () => void
  resume: (successorPid: number | undefined, reason: string) => void
  /** An idle keep-alive connection handed over by the previous generation. */
  connection: (listener: string, handle: object) => void
  /** Accept on a copy of another slot's socket too, until uncover (supervised, a socket per slot). */
  cover: (slot: number, listener: string, handle: object) => void
  uncover: (slot: number) => void
  /** Several workers: report our connection count (lib/connection-balance.ts); move `count` of them. */
  balance: (every: number) => void
  shed: (count: number) => void
  /** Supervised: a reload began (our successor is spawned), and its outcome. */
  reloading: (generation: number, successorPid: number | undefined) => void
  reloadFinished: (result: ReloadResult) => void
}

export interface ParentLinkOptions {
  /** Standalone: a bare commit (from a release that does not keep the channel) cuts it here. */
  cutChannelOnBareCommit: boolean
  /** Supervised: the channel is the supervisor's, ours to cut (standalone it may be PM2's or nodemon's). */
  supervisorChannel?: boolean
}

export class ParentLink {
  private verdict: Verdict | undefined
  /** Resolves endHandoffs() once the predecessor answers. */
  private handoffsEnded: (() => void) | undefined
  private readonly waiting: Array<(verdict: Verdict) => void> = []
  private readonly reloads = new Map<number, (result: ReloadResult) => void>()
  private nextReloadId = 1
  private keepChannel = false
  /** Standalone: by when (ms from its commit) our predecessor said it will have exited; older releases do not say. */
  private predecessorExitWithinMs: number | undefined
  /** The supervisor answers each connection we hand up once it has passed it on (see sendConnection). */
  private passAcks = false
  private nextConnectionId = 1
  private saidListening = false
  private readonly passing = new Map<number, (err?: Error) => void>()
  private orders: ParentOrders
  private readonly stopCrashReport: () => void

  constructor (private readonly port: ProcessPort, private readonly options: ParentLinkOptions) {
    this.orders = {
      abort: () => port.exit(1),
      drain: () => port.exit(0),
      cut: () => {},
      listener: (_address, handle) => closeHandle(handle),
      retire: () => {},
      resume: () => {},
      connection: (_listener, handle) => closeHandle(handle),
      cover: (_slot, _listener, handle) => closeHandle(handle),
      uncover: () => {},
      balance: () => {},
      shed: () => {},
      reloading: () => {},
      reloadFinished: () => {}
    }
    port.on('message', this.onRawMessage)
    // A successor's preload watches from before the app's first line; else we do, from now.
    this.stopCrashReport = preloadWatches() ? () => {} : reportCrashes(port)
    // A parent that is gone can no longer serve: we are the serving generation.
    port.once('disconnect', this.onDisconnect)
  }

  private readonly onRawMessage = (raw: unknown, handle: unknown): void => this.onMessage(raw, handle)

  private readonly onDisconnect = (): void => {
    this.settle('commit')
    for (const [id, resolve] of this.reloads) {
      resolve(notServing(this.port.pid, 'the supervisor is gone'))
      this.reloads.delete(id)
    }
    for (const settle of this.passing.values()) settle(new Error('the supervisor is gone'))
  }

  /** The link to our parent, when we were started with an IPC channel. */
  static connect (port: ProcessPort, options: ParentLinkOptions): ParentLink | undefined {
    return port.hasChannel && port.connected ? new ParentLink(port, options) : undefined
  }

  get connected (): boolean {
    return this.port.connected
  }

  /** Once committed: by when (ms from the commit) the parent said it will have exited, if it said. */
  get parentExitsWithinMs (): number | undefined {
    return this.predecessorExitWithinMs
  }

  /** The generation takes over the parent's orders from their defaults. */
  subscribe (orders: Partial<ParentOrders>): void {
    this.orders = { ...this.orders, ...orders }
  }

  private onMessage (raw: unknown, handle: unknown): void {
    const message = unwrap(raw) as ParentMessage | undefined
    if (message === undefined) return
    const withHandle = typeof handle === 'object' && handle !== null ? handle : undefined
    switch (message.type) {
      case 'connection': if (withHandle !== undefined) this.orders.connection(message.listener, withHandle); return
      case 'listener': if (withHandle !== undefined) this.orders.listener(message.address, withHandle); return
      case 'cover': if (withHandle !== undefined) this.orders.cover(message.slot, message.listener, withHandle); return
      case 'uncover': this.orders.uncover(message.slot); return
      case 'balance': this.orders.balance(message.every); return
      case 'shed': this.orders.shed(message.count); return
      case 'commit':
        this.keepChannel = message.keepChannel === true
        this.passAcks = message.passAcks === true
        if (typeof message.exitWithinMs === 'number') this.predecessorExitWithinMs = message.exitWithinMs
        this.settle('commit')
        return
      case 'abort': this.settle('abort'); return
      case 'drain':
        // The drain stops accepting before its first wait: from here on a new connection reaches the successor.
        this.orders.drain(message.probation === true, typeof message.rampMs === 'number' ? message.rampMs : undefined)
        this.send({ type: 'accepting-stopped' })
        return
      case 'cut': this.orders.cut(); return
      case 'retire': this.orders.retire(); return
      case 'resume': this.orders.resume(message.successorPid, message.reason); return
      case 'connection-passed': this.passing.get(message.id)?.(message.ok ? undefined : new Error('the supervisor could not pass the connection on')); return
      case 'reload-result': this.reloads.get(message.id)?.(fromWire(message.result)); return
      case 'reloading': this.orders.reloading(message.generation, message.successorPid); return
      case 'reload-finished': this.orders.reloadFinished(fromWire(message.result)); return
      case 'handoffs-ended': this.handoffsEnded?.()
    }
  }

  /** The app called listen(): its boot is done, its readiness check comes next. Said once. */
  listening (): void {
    if (this.saidListening) return
    this.saidListening = true
    this.send({ type: 'listening' })
  }

  /** The app's boot failed, and with what: the parent names it if we exit or time out before ready. */
  bootFailed (cause: string): void {
    this.send({ type: 'boot-failed', cause })
  }

  /** Our readiness check did not pass yet, and why: the parent names it if readyTimeout comes first. */
  notReady (reason: string): void {
    this.send({ type: 'not-ready', reason })
  }

  /** Reports ready and resolves with the parent's verdict. */
  ready (pid: number, generation: number, instances = 1, listenedAt?: number): Promise<Verdict> {
    // Before ready, what ends us is a boot that failed, told to the parent; from now on, a crash.
    this.stopCrashReport()
    stopPreloadWatch()
    this.send({ type: 'ready', pid, generation, ...(instances > 1 ? { instances } : {}), ...(listenedAt !== undefined ? { listenedAt } : {}), covers: true, version: PACKAGE_VERSION, acksDrain: true })
    return new Promise((resolve) => {
      if (this.verdict !== undefined) resolve(this.verdict)
      else this.waiting.push(resolve)
    })
  }

  /** Supervised: one more Fastify instance listens (the next worker inherits its sockets too). */
  sendInstances (count: number): void {
    this.send({ type: 'instances', count })
  }

  /** Supervised: how many connections we hold (the supervisor's balance). */
  sendLoad (connections: number): void {
    this.send({ type: 'load', connections })
  }

  /**
   * Our drain is over; resolves once the predecessor has sent us its last connection (its answer,
   * which follows every one sent before), once the channel is gone, or after `timeLimit` ms (a
   * predecessor of an older release does not answer). A supervisor hands connections only to
   * serving workers: nothing to wait for.
   */
  endHandoffs (timeLimit = HANDOFFS_END_LIMIT_MS): Promise<void> {
    if (!this.port.connected || this.options.supervisorChannel === true) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.port.off('disconnect', done)
        this.handoffsEnded = undefined
        resolve()
      }
      const timer = setTimeout(done, timeLimit)
      this.port.once('disconnect', done)
      this.handoffsEnded = done
      this.send({ type: 'handoffs-end' })
    })
  }

  /** Resolves once the message is written to the channel (or there is none): exit only after that. */
  failed (message: string, code?: 'HOT_RELOAD_UNCLAIMED_SOCKET'): Promise<void> {
    return new Promise((resolve) => {
      if (!this.port.connected) return resolve()
      this.port.send(wrap({ type: 'failed', message, ...(code !== undefined && { code }) }), undefined, () => resolve())
    })
  }

  /**
   * The app closed every instance by itself: the channel must not keep the process alive, as nothing
   * of ours would without a parent. (A worker would otherwise stay, serving nothing, while its
   * supervisor's copy of the socket queued connections for it.)
   */
  release (): void {
    this.port.off('message', this.onRawMessage)
    this.port.off('disconnect', this.onDisconnect)
    if (this.options.supervisorChannel === true) this.port.disconnect()
  }

  /** We shut down on purpose: whoever watches our probation must not take it for a failure. */
  sendStopping (): void {
    this.send({ type: 'stopping' })
  }

  /** Standalone: tells the previous generation, if it still runs, how many newer generations drain now. */
  sendBehind (newer: number): void {
    this.send({ type: 'behind', newer })
  }

  /**
   * Hands a listening socket to the parent, which keeps it without accepting on it: one we bound
   * (supervised), or a copy of an adopted one for the probation (standalone).
   */
  sendListener (address: string, server: Server): Promise<void> {
    return this.sendHandle({ type: 'listener', address }, listeningHandle(server))
  }

  /**
   * Hands an idle connection (its raw handle) up to the supervisor. Resolves once the supervisor has
   * passed it on to a serving worker (it says so, 'connection-passed'), or, from a supervisor that does
   * not say, once it is sent. Waiting for the second hop is what paces the moves (connection-handoff.ts):
   * the next connection leaves only when this one has arrived, so none waits in a queue unread.
   */
  async sendConnection (listener: string, handle: object): Promise<void> {
    if (!this.passAcks) return await this.sendHandle({ type: 'connection', listener }, handle)
    const id = this.nextConnectionId++
    const passed = new Promise<void>((resolve, reject) => {
      // A supervisor that never answers must not hold the drain: past this, the send counts.
      const timer = setTimeout(() => settle(), PASS_ACK_LIMIT_MS)
      const settle = (err?: Error): void => {
        clearTimeout(timer)
        this.passing.delete(id)
        if (err === undefined) resolve()
        else reject(err)
      }
      this.passing.set(id, settle)
    })
    try {
      await this.sendHandle({ type: 'connection', listener, id }, handle)
    } catch (err) {
      this.passing.get(id)?.(err as Error)
    }
    return await passed
  }

  /** Asks the supervisor for a reload and resolves with its result. */
  requestReload (): Promise<ReloadResult> {
    const id = this.nextReloadId++
    return new Promise((resolve) => {
      this.reloads.set(id, (result) => { this.reloads.delete(id); resolve(result) })
      this.send({ type: 'reload-request', id })
    })
  }

  private sendHandle (message: ChildMessage, handle: object): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.port.connected) return reject(new Error('no channel to the supervisor'))
      this.port.send(wrap(message), handle, (err) => err ? reject(err) : resolve())
    })
  }

  private send (message: ChildMessage): void {
    if (this.port.connected) this.port.send(wrap(message), undefined, () => {})
  }

  private settle (verdict: Verdict): void {
    if (this.verdict !== undefined) return
    this.verdict = verdict
    if (verdict === 'commit') {
      // So that the old generation's exit is not held up by the channel.
      if (this.options.cutChannelOnBareCommit && !this.keepChannel) this.port.disconnect()
    } else {
      // Said first: the parent then waits for our drain instead of taking us for hung.
      this.send({ type: 'aborting' })
      this.orders.abort()
    }
    for (const resolve of this.waiting.splice(0)) resolve(verdict)
  }
}

function closeHandle (handle: object): void {
  const closable = handle as { close?: () => void }
  if (typeof closable.close === 'function') closable.close()
}

// One generation's life: serve, reload into a successor, drain, exit. This is `fastify.hotReload`.
import { EventEmitter } from 'node:events'
import { existsSync, unlinkSync } from 'node:fs'
import type { Server } from 'node:net'
import type { FastifyInstance } from 'fastify'
import closeWithGrace from 'close-with-grace'
import { ConnectionTracker } from './connection-tracker'
import { hotReloadError } from './errors'
import { handoffEnv, type InheritedSocket } from './handoff-env'
import type { Launch } from './launch'
import { addListenHook } from './listen-interceptor'
import { formatAddress, fromServerAddress, type ListenerAddress } from './listener-address'
import { detachConnection, hasHttp1Parser, listeningFd, parserIsIdle, reattachConnection, setPipeName, socketFromHandle } from './node-internals'
import { Http2Sessions } from './http2-sessions'
import { LongLivedConnections } from './long-lived'
import { removePidFileIfOurs, writePidFile, writeReloadRecord } from './pid-file'
import { createNotifier, type Notifier } from './sd-notify'
import { toWire, unwrap, wrap, type ChildMessage } from './ipc'
import type { ChildProcess } from 'node:child_process'
import type { Server as HttpServer } from 'node:http'
import type { Socket } from 'node:net'
import type { ResolvedOptions } from './options'
import type { ParentLink } from './parent-link'
import { SocketAdoption } from './socket-adoption'
import { startSuccessor, type ListenerCopy, type StartedSuccessor } from './successor'
import { Retirement } from './retirement'
import type { DrainResult, HotReloadController, HotReloadError, HotReloadEvents, HotReloadState, ReloadResult } from './types'

// close-with-grace listens to these too; the plugin handles only SIGTERM and SIGINT.
const NOT_OURS: closeWithGrace.AllEvents[] = ['SIGHUP', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGUSR2',
  'uncaughtException', 'unhandledRejection', 'beforeExit']
const SELF_CHECK_INTERVAL = 100

export interface GenerationContext {
  generation: number
  /** Started by the supervisor, which does reloads and keeps the sockets. */
  supervised: boolean
  inherited: InheritedSocket[]
  parent: ParentLink | undefined
  launch: Launch
}

type DrainReason = DrainResult['reason'] | 'abort'

export class Controller extends EventEmitter<HotReloadEvents> implements HotReloadController {
  readonly generation: number
  readonly pid = process.pid
  private current: HotReloadState = 'starting'
  private committed: boolean
  private readonly tracker = new ConnectionTracker()
  private readonly http2Sessions = new Http2Sessions()
  private readonly longLived: LongLivedConnections
  private readonly adoption: SocketAdoption
  private readonly servers = new Set<Server>()
  private readonly requestHandlers: Set<Function>
  private removeListenHook: (() => void) | undefined
  private readinessCheck: Promise<boolean> | undefined
  private checkingReadiness = false
  private readonly signalHandlers = new Map<NodeJS.Signals, () => void>()
  private graceful: { uninstall: () => void } | undefined
  private reloading: Promise<ReloadResult> | undefined
  private successor: StartedSuccessor | undefined
  private draining: Promise<DrainResult | undefined> | undefined
  private shuttingDown = false
  private readonly notify: Notifier | undefined
  /** Standalone: the committed successor's channel, until our drain is over (handoffs, 'behind' news). */
  private successorChannel: ChildProcess | undefined
  /** Standalone: watches the committed successor until its probation is over (see Retirement). */
  private retirement: Retirement | undefined
  private cutConnections = 0
  private readonly listenerKeys = new Map<Server, string>()
  /**
   * Handed-over connections whose handle is still on its way (Node sends one at a time): each one's
   * send callback, and the promise it settles. Node drops the callbacks of sends still queued when
   * the channel dies, so the successor's exit calls the ones left.
   */
  private readonly handoffsInFlight = new Map<(err?: Error | null) => void, Promise<void>>()

  constructor (
    private readonly app: FastifyInstance,
    private readonly options: ResolvedOptions,
    private readonly context: GenerationContext
  ) {
    super()
    this.generation = context.generation
    this.committed = context.parent === undefined
    // Under a supervisor, the supervisor talks to systemd.
    this.notify = context.supervised ? undefined : createNotifier(process.env, app.log)
    // A successor runs its readiness check before it adopts (accepts on) the shared sockets: a
    // release that is not ready never takes a connection.
    this.adoption = new SocketAdoption(context.inherited, () => this.passReadinessCheck())
    // Fastify's extra servers (listen on 'localhost') share the main server's request handler.
    this.requestHandlers = new Set(app.server.listeners('request'))
    this.longLived = new LongLivedConnections(app, options.closeSpread, this)
    this.tracker.watch(app.server)
    this.http2Sessions.watch(app.server)
    this.removeListenHook = addListenHook((server, args, listen) => {
      if (!this.isOwnServer(server)) return false
      this.servers.add(server)
      this.tracker.watch(server as Parameters<ConnectionTracker['watch']>[0])
      this.http2Sessions.watch(server)
      return this.adoption.listen(server, args, listen)
    })
    context.parent?.onAbort(() => {
      this.app.log.warn('hot-reload: the previous generation aborted this successor; draining and exiting')
      void this.drain('abort').then(() => process.exit(1))
    })
    context.parent?.onConnection((listener, handle) => this.adoptConnection(listener, handle))
    context.parent?.onCut(() => this.cutNow('the supervisor has too many generations draining'))
    context.parent?.onDrain((probation) => {
      this.app.log.info(`hot-reload: the supervisor started a successor; draining generation ${this.generation}`)
      if (probation) this.retirement = new Retirement(undefined)
      void this.drain('reload').then((drained) => { if (drained !== undefined) process.exit(0) })
    })
    context.parent?.onProbation({
      listener: (address, handle) => {
        const copy = { address, handle: handle as { close: () => void } }
        if (this.retirement === undefined) copy.handle.close()
        else this.retirement.addCopy(copy)
      },
      retire: () => this.retirement?.endProbation(),
      resume: (successorPid, reason) => {
        if (this.retirement === undefined) return
        this.retirement.successorPid = successorPid
        this.retirement.fail(reason)
      }
    })
    // Without the supervisor there is no one to resume us, wait for, reload or stop us: like a
    // cluster worker whose primary is gone, drain and exit (no orphan keeps the port).
    if (context.supervised) {
      process.once('disconnect', () => {
        this.retirement?.endProbation()
        if (this.current === 'draining' || this.current === 'closed' || this.shuttingDown) return
        this.app.log.warn('hot-reload: the supervisor is gone; draining and exiting')
        void this.shutdown().then(() => process.exit(0))
      })
    }
  }

  get state (): HotReloadState {
    return this.current
  }

  private isOwnServer (server: Server): boolean {
    return server === this.app.server || server.listeners('request').some((listener) => this.requestHandlers.has(listener))
  }

  private setState (next: HotReloadState): void {
    const previous = this.current
    if (previous === next) return
    this.current = next
    this.emit('state', next, previous)
  }

  /** Why /health must say 503, or null when this generation is ready. */
  notReadyReason (): string | null {
    const serving = this.current === 'serving' || this.current === 'reloading' ||
      (this.current === 'starting' && this.checkingReadiness)
    if (serving) {
      const app = this.app as FastifyInstance & { isUnderPressure?: () => boolean }
      return app.isUnderPressure?.() === true ? 'under-pressure' : null
    }
    return this.current
  }

  // ---- start -------------------------------------------------------------------------------

  /** Fastify's onListen: every listen() of this instance is done. */
  async onListen (): Promise<void> {
    this.stopIntercepting()
    const unclaimed = this.adoption.pending
    if (unclaimed.length > 0) {
      const asked = [...this.servers].map((server) => fromServerAddress(server.address())).filter((a): a is ListenerAddress => a !== null)
      const message = `inherited socket(s) ${unclaimed.map((s) => `${formatAddress(s.address)} (fd ${s.fd})`).join(', ')} ` +
        `were not claimed: the app listens on ${asked.map(formatAddress).join(', ') || 'nothing'}; the old generation's addresses would go dark`
      this.app.log.error({ code: 'HOT_RELOAD_UNCLAIMED_SOCKET' }, `hot-reload: ${message}`)
      this.context.parent?.failed(message)
      await this.drain('abort')
      process.exit(1)
    }
    this.setState('serving')
    this.installSignals()
    if (this.committed) this.becameMain()
    for (const { socket } of this.adoption.adopted) {
      this.app.log.info({ fd: socket.fd }, `hot-reload: adopted inherited socket ${formatAddress(socket.address)}`)
    }
    const parent = this.context.parent
    if (parent === undefined) return
    if (this.context.supervised) await this.handOverBoundSockets(parent)
    else await this.sendListenerCopies(parent)
    await this.reportReady(parent)
  }

  /** Supervised mode: the supervisor keeps a copy of every socket we bound ourselves. */
  private async handOverBoundSockets (parent: ParentLink): Promise<void> {
    const adopted = new Set(this.adoption.adopted.map(({ server }) => server))
    for (const server of this.servers) {
      const address = fromServerAddress(server.address())
      if (adopted.has(server) || !server.listening || address === null) continue
      await parent.sendListener(formatAddress(address), server)
    }
  }

  /** Standalone: the previous generation keeps a copy of each adopted socket for our probation. */
  private async sendListenerCopies (parent: ParentLink): Promise<void> {
    for (const { server, socket } of this.adoption.adopted) {
      try {
        await parent.sendListener(formatAddress(socket.address), server)
      } catch (err) {
        this.app.log.warn({ err }, 'hot-reload: could not send a copy of a listening socket to the previous generation')
      }
    }
  }

  /** This process is the serving generation now: the pid file names it. */
  private becameMain (): void {
    this.emit('serving', { generation: this.generation, pid: this.pid })
    if (this.options.pidFile !== undefined && !this.context.supervised) writePidFile(this.options.pidFile, this.pid)
    // The first generation tells systemd it is up; a successor's predecessor sent MAINPID + READY.
    if (this.context.parent === undefined) void this.notify?.({ READY: '1', STATUS: `serving generation ${this.generation}` })
  }

  private async reportReady (parent: ParentLink): Promise<void> {
    if (!(await this.passReadinessCheck())) return
    const verdict = await parent.ready(this.pid, this.generation)
    if (verdict === 'commit') {
      this.committed = true
      this.becameMain()
      this.app.log.info({ generation: this.generation }, `hot-reload: generation ${this.generation} is serving (pid ${this.pid})`)
    }
  }

  /** Resolves true once our own readiness check passed (successors only), false when taken down meanwhile. */
  private passReadinessCheck (): Promise<boolean> {
    if (this.context.parent === undefined) return Promise.resolve(true)
    this.readinessCheck ??= this.selfCheck()
    return this.readinessCheck
  }

  /** Our own readiness, through our own /health (in-process: the shared socket could reach the old generation). */
  private async selfCheck (): Promise<boolean> {
    this.checkingReadiness = true
    try {
      return await this.checkUntilReady()
    } finally {
      this.checkingReadiness = false
    }
  }

  private async checkUntilReady (): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      if (this.current === 'draining' || this.current === 'closed') return false
      let reason: string | null
      if (this.options.healthPath === false) {
        reason = this.notReadyReason()
      } else {
        const response = await this.app.inject({ method: 'GET', url: this.options.healthPath })
        reason = response.statusCode === 200 ? null : `GET ${this.options.healthPath} answered ${response.statusCode}`
      }
      if (reason === null) return true
      if (attempt === 1) this.app.log.warn(`hot-reload: not ready yet (${reason}); checking again`)
      await new Promise((resolve) => setTimeout(resolve, SELF_CHECK_INTERVAL))
    }
  }

  private installSignals (): void {
    for (const signal of this.options.reloadSignals) {
      const handler = (): void => {
        this.app.log.info(`hot-reload: ${signal} received`)
        void this.reload()
      }
      this.signalHandlers.set(signal, handler)
      process.on(signal, handler)
    }
    if (this.options.gracefulShutdown) {
      this.graceful = closeWithGrace({
        delay: this.options.drainTimeout + 5_000,
        logger: this.app.log,
        skip: NOT_OURS
      }, async ({ signal }) => {
        this.app.log.info(`hot-reload: ${signal ?? 'shutdown'} received; draining and exiting`)
        await this.shutdown()
      })
    }
  }

  private stopIntercepting (): void {
    this.removeListenHook?.()
    this.removeListenHook = undefined
  }

  // ---- reload ------------------------------------------------------------------------------

  reload (): Promise<ReloadResult> {
    if (this.context.supervised && this.context.parent !== undefined && this.current === 'serving' && this.committed) {
      this.app.log.info('hot-reload: asking the supervisor for a reload')
      return this.context.parent.requestReload()
    }
    if (this.reloading !== undefined) {
      this.app.log.info('hot-reload: a reload is already running; this request joins it')
      return this.reloading
    }
    if (this.current !== 'serving' || !this.committed || this.shuttingDown) {
      const why = this.committed ? `this generation is ${this.current}` : 'this generation is not yet confirmed by its predecessor'
      this.app.log.warn(`hot-reload: reload ignored: ${why}`)
      return Promise.resolve(this.failure(0, undefined, hotReloadError('HOT_RELOAD_NOT_SERVING', `reload ignored: ${why}`)))
    }
    this.reloading = this.runReload().finally(() => { this.reloading = undefined })
    return this.reloading
  }

  private failure (startedAt: number, successorPid: number | undefined, error: HotReloadError): ReloadResult {
    return {
      ok: false,
      generation: this.generation,
      pid: this.pid,
      durationMs: startedAt === 0 ? 0 : Math.round(performance.now() - startedAt),
      successorPid,
      error
    }
  }

  private async runReload (): Promise<ReloadResult> {
    const startedAt = performance.now()
    const next = this.generation + 1
    this.setState('reloading')
    void this.notify?.({ RELOADING: '1', MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n), STATUS: `reloading into generation ${next}` })
    const listening = [...this.servers].filter((server) => server.listening)
    let plan
    try {
      if (listening.length === 0) throw hotReloadError('HOT_RELOAD_NO_LISTENERS', 'reload needs a listening server; call listen() first')
      plan = this.spawnPlan(listening, next)
    } catch (error) {
      return this.finishFailed(this.failure(startedAt, undefined, error as HotReloadError))
    }
    const successor = startSuccessor(plan, { readyTimeout: this.options.readyTimeout, abortGrace: this.options.drainTimeout + 1_000 })
    this.successor = successor
    this.app.log.info({ generation: next, successorPid: successor.pid, sockets: plan.addresses },
      `hot-reload: reload started; successor pid ${successor.pid ?? '(none)'} for generation ${next}`)
    this.emit('reloading', { generation: next, successorPid: successor.pid })
    const outcome = await successor.outcome
    this.successor = undefined
    if (!outcome.ok) return this.finishFailed(this.failure(startedAt, outcome.pid, outcome.error))
    if (this.shuttingDown) {
      await outcome.abort()
      return this.finishFailed(this.failure(startedAt, outcome.pid, hotReloadError('HOT_RELOAD_NOT_SERVING', 'reload cancelled: shutting down')))
    }
    // The channel stays until our drain is over: for handoffs and for news of later drains.
    outcome.commit()
    this.watchSuccessor(outcome.child, outcome.pid, outcome.listenerCopies)
    const result: ReloadResult = { ok: true, generation: next, pid: outcome.pid, durationMs: Math.round(performance.now() - startedAt), successorPid: outcome.pid }
    void this.notify?.({ MAINPID: String(outcome.pid), READY: '1', STATUS: `serving generation ${next}` })
    this.recordReload(result)
    this.app.log.info({ generation: next, successorPid: outcome.pid, durationMs: result.durationMs },
      `hot-reload: successor pid ${outcome.pid} ready after ${result.durationMs} ms; draining generation ${this.generation}`)
    this.emit('reloaded', result)
    void this.drain('reload').then((drained) => { if (drained !== undefined) process.exit(0) })
    return result
  }

  private watchSuccessor (child: ChildProcess, pid: number, copies: ListenerCopy[]): void {
    this.successorChannel = child
    this.retirement = Retirement.watchChild(child, pid, this.options.probation, copies)
    // A successor that dies takes the handoffs still queued on its channel with it: they stay here.
    child.once('exit', () => {
      for (const sent of [...this.handoffsInFlight.keys()]) sent(new Error('the successor exited before it took the connection'))
    })
    child.on('message', (raw: unknown) => {
      const message = unwrap(raw) as ChildMessage | undefined
      if (message?.type === 'behind') this.onBehind(message.newer)
      else if (message?.type === 'stopping') this.retirement?.endProbation()
    })
    // We drain now: the generation before us (if it still drains) learns it is one further behind.
    this.context.parent?.sendBehind(1)
  }

  /** `newer` generations after us are draining: our successor has moved on, and we may be one too many. */
  private onBehind (newer: number): void {
    this.retirement?.endProbation()
    const draining = newer + 1
    this.context.parent?.sendBehind(draining)
    if (draining > this.options.maxDrainingGenerations) {
      this.cutNow(`${draining} generations are draining, more than maxDrainingGenerations (${this.options.maxDrainingGenerations}); this is the oldest`)
    }
  }

  /** Ends our drain now: the connections still open are cut and counted. */
  private cutNow (why: string): void {
    if (this.current !== 'draining') return
    this.retirement?.endProbation()
    const cut = this.tracker.cutAll()
    this.cutConnections += cut
    this.app.log.warn({ cutConnections: cut }, `hot-reload: ${why}; closed ${cut} connection(s) still open`)
  }

  private recordReload (result: ReloadResult): void {
    if (this.options.pidFile === undefined) return
    try {
      writeReloadRecord(this.options.pidFile, { ...toWire(result), fromPid: this.pid, finishedAt: Date.now() })
    } catch (err) {
      this.app.log.warn({ err }, 'hot-reload: could not write the reload record beside the pid file')
    }
  }

  private finishFailed (result: ReloadResult): ReloadResult {
    if (this.current === 'reloading') this.setState('serving')
    void this.notify?.({ READY: '1', STATUS: `reload failed: ${result.error?.message ?? 'unknown'}` })
    this.recordReload(result)
    this.app.log.error({ err: result.error, successorPid: result.successorPid },
      `hot-reload: reload failed, generation ${this.generation} keeps serving: ${result.error?.message}`)
    this.emit('reloadFailed', result)
    return result
  }

  private spawnPlan (listening: Server[], next: number) {
    const addresses = listening.map((server) => {
      const address = fromServerAddress(server.address())
      if (address === null) throw hotReloadError('HOT_RELOAD_NO_LISTENERS', 'a listening server has no address')
      return address
    })
    const fds = listening.map(listeningFd)
    const launch = this.context.launch
    const successor = this.options.successor
    const cwd = successor.cwd ?? launch.cwd
    return {
      execPath: successor.execPath ?? launch.execPath,
      args: [...(successor.execArgv ?? launch.execArgv), ...(successor.args ?? launch.args)],
      cwd,
      env: { ...process.env, ...successor.env, PWD: cwd, ...handoffEnv(addresses, next, this.pid) },
      fds,
      addresses: addresses.map(formatAddress)
    }
  }

  // ---- drain and shutdown ------------------------------------------------------------------

  /** SIGTERM/SIGINT: give up any reload in progress, then drain and close. */
  async shutdown (): Promise<DrainResult> {
    this.shuttingDown = true
    // No going back now: a probation still running ends, and the drain finishes; and if we are on
    // probation ourselves, our predecessor must not take this exit for a failure.
    this.retirement?.endProbation()
    this.context.parent?.sendStopping()
    this.successor?.cancel('reload cancelled: shutting down')
    await this.reloading
    return await this.drain('shutdown') as DrainResult
  }

  /** Resolves with the result once closed, or undefined when the generation resumed serving instead. */
  private drain (reason: DrainReason): Promise<DrainResult | undefined> {
    if (this.draining === undefined) this.draining = this.runDrain(reason)
    return this.draining
  }

  private async runDrain (reason: DrainReason): Promise<DrainResult | undefined> {
    const startedAt = performance.now()
    const publicReason = reason === 'reload' ? 'reload' : 'shutdown'
    this.setState('draining')
    this.emit('draining', { reason: publicReason })
    if (reason === 'shutdown') {
      void this.notify?.({ STOPPING: '1' })
      if (this.options.pidFile !== undefined) removePidFileIfOurs(this.options.pidFile, this.pid)
    }
    for (const server of this.servers) {
      const address = fromServerAddress(server.address())
      if (address !== null) this.listenerKeys.set(server, formatAddress(address))
    }
    this.stopAccepting(reason === 'shutdown')
    this.http2Sessions.goAway()
    this.longLived.drain(this.options.drainTimeout, this.servers, publicReason)
    const deadline = setTimeout(() => {
      this.cutNow(`drainTimeout (${this.options.drainTimeout} ms) reached`)
    }, this.options.drainTimeout)
    const handoff = reason === 'reload' && this.options.connectionHandoff
      ? (socket: Socket, server: HttpServer) => this.handOff(socket, server)
      : undefined
    const drained = this.drainConnections(handoff).finally(() => clearTimeout(deadline))
    const retirement = reason === 'reload' ? this.retirement : undefined
    if (retirement !== undefined) {
      // The successor's probation: should it die before it is over, we serve again.
      const lost = await Promise.race([drained.then(() => retirement.over).then(() => undefined), retirement.lost])
      if (lost !== undefined && !this.shuttingDown) {
        clearTimeout(deadline)
        this.resume(retirement, lost)
        return undefined
      }
      retirement.release()
    } else {
      await drained
    }
    // Every handed-over connection was sent: the successor runs on by itself.
    if (this.successorChannel?.connected === true) this.successorChannel.disconnect()
    this.successorChannel?.unref()
    const movedConnections = this.tracker.movedConnections
    const result: DrainResult = { durationMs: Math.round(performance.now() - startedAt), cutConnections: this.cutConnections, movedConnections, reason: publicReason }
    this.app.log.info(result, `hot-reload: generation ${this.generation} drained after ${result.durationMs} ms`)
    try {
      await this.app.close()
    } catch (err) {
      this.app.log.error({ err }, 'hot-reload: error while closing')
    }
    this.setState('closed')
    this.emit('drained', result)
    return result
  }

  /**
   * Connections handed over are gone from here once their handle has reached the successor; one
   * whose handoff failed comes back and drains here. Stops early when the drain is given up (resume).
   */
  private async drainConnections (handoff: ((socket: Socket, server: HttpServer) => boolean) | undefined): Promise<void> {
    do {
      await this.tracker.drain(this.options.idleGrace, handoff, handoff === undefined ? undefined : readyToMove)
      while (this.handoffsInFlight.size > 0) await Promise.all(this.handoffsInFlight.values())
    } while (this.tracker.size > 0 && this.current === 'draining')
  }

  /** Our successor died during its probation: take the sockets back and serve again. */
  private resume (retirement: Retirement, reason: string): void {
    this.tracker.resume()
    this.longLived.stop()
    this.cutConnections = 0
    this.retirement = undefined
    this.successorChannel = undefined
    this.draining = undefined
    const copies = retirement.takeCopies()
    for (const server of this.servers) {
      // Our drain switched this off; the prototype's method is back.
      delete (server as Server & { closeIdleConnections?: unknown }).closeIdleConnections
      const key = this.listenerKeys.get(server)
      const copy = key === undefined ? undefined : copies.get(key)
      if (copy === undefined) {
        if (key !== undefined) this.app.log.error(`hot-reload: no copy of ${key} came back; that address stays dark`)
        continue
      }
      copies.delete(key as string)
      server.listen(copy)
      if (key?.startsWith('unix:') === true) setPipeName(server, key.slice('unix:'.length))
    }
    for (const copy of copies.values()) copy.close()
    this.setState('serving')
    this.becameMain()
    void this.notify?.({ MAINPID: String(this.pid), READY: '1', STATUS: `serving generation ${this.generation} again: ${reason}` })
    this.app.log.error({ successorPid: retirement.successorPid, generation: this.generation },
      `hot-reload: ${reason}; generation ${this.generation} took its sockets back and serves again`)
    this.emit('resumed', { generation: this.generation, successorPid: retirement.successorPid ?? 0, reason })
  }

  /** Sends an idle keep-alive connection to the next generation; false when it cannot move. */
  private handOff (socket: Socket, server: HttpServer): boolean {
    const listener = this.listenerKeys.get(server)
    const channel = this.successorChannel
    const parent = this.context.parent
    const supervisedUp = this.context.supervised && parent !== undefined && process.connected
    if (listener === undefined || (!supervisedUp && channel?.connected !== true)) return false
    const handle = detachConnection(socket)
    if (handle === null) return false
    // Our copy of the fd goes once theirs is on its way; the connection itself stays open.
    let done: () => void = () => {}
    const inFlight = new Promise<void>((resolve) => { done = resolve })
    const sent = (err?: Error | null): void => {
      // Once only: the successor's exit may settle it before Node does.
      if (!this.handoffsInFlight.delete(sent)) return
      if (err === undefined || err === null) {
        socket.destroy()
      } else if (reattachConnection(socket)) {
        // Nothing was read meanwhile; it drains here with the ordinary close.
        this.app.log.warn({ err: err.message }, 'hot-reload: a connection could not be handed over; it drains here')
        this.tracker.keep(socket, server)
      } else {
        this.app.log.warn({ err: err.message }, 'hot-reload: a connection could not be handed over nor kept; closing it')
        socket.destroy()
      }
      done()
    }
    this.handoffsInFlight.set(sent, inFlight)
    if (supervisedUp) parent.sendConnection(listener, handle).then(() => sent(), sent)
    else (channel as ChildProcess).send(wrap({ type: 'connection', listener }), handle as Socket, sent)
    return true
  }

  /** A connection the previous generation handed over: serve it as if we had accepted it. */
  private adoptConnection (listener: string, handle: object): void {
    const server = [...this.servers].find((candidate) => {
      const address = fromServerAddress(candidate.address())
      return candidate.listening && address !== null && formatAddress(address) === listener
    })
    if (server === undefined) {
      this.app.log.warn(`hot-reload: got a connection for ${listener}, which this generation does not listen on; closing it`)
      ;(handle as { close?: () => void }).close?.()
      return
    }
    server.emit('connection', socketFromHandle(handle))
  }

  /**
   * Closes the listening sockets only. The kernel socket lives on in the successor, so nothing is
   * refused. Node's http close() would also close idle keep-alive connections at once (racing with
   * clients' next requests), so that part is switched off: the tracker closes them once idle.
   */
  private stopAccepting (removeUnixPaths: boolean): void {
    for (const server of this.servers) {
      const http = server as Server & { closeIdleConnections?: () => void }
      if (typeof http.closeIdleConnections === 'function') http.closeIdleConnections = () => {}
      if (!server.listening) continue
      const address = fromServerAddress(server.address())
      server.close()
      // Our unix sockets outlive a close (see SocketAdoption); on shutdown the path goes too.
      if (removeUnixPaths && address?.kind === 'unix' && existsSync(address.path)) {
        try { unlinkSync(address.path) } catch {}
      }
    }
  }

  /** Fastify's onClose: the app is closing (through us or by itself). */
  onClose (): void {
    this.stopIntercepting()
    for (const [signal, handler] of this.signalHandlers) process.removeListener(signal, handler)
    this.signalHandlers.clear()
    this.graceful?.uninstall()
    this.successor?.cancel('reload cancelled: the app is closing')
    if (this.current !== 'draining') this.setState('closed')
  }
}

/** An HTTP/1 connection moves once its parser is between requests; any other can never move (it says so at once). */
function readyToMove (socket: Socket, server: HttpServer): boolean {
  return !hasHttp1Parser(socket) || parserIsIdle(socket, server)
}

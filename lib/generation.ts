// One generation's life: start (listen or adopt, readiness, report ready), serve, reload into a
// successor; Handover takes it from there (drain, exit or resume). State, events and the exit go
// through the Lifecycle. The steps are modules that return values: listeners, readiness, reload,
// drain, connection handoff, service status, signals; the mode says what is standalone or supervised.
import type { EventEmitter } from 'node:events'
import type { FastifyInstance } from 'fastify'
import { ConnectionHandoff } from './connection-handoff'
import { ConnectionTracker } from './connection-tracker'
import { Drain } from './drain'
import type { InheritedSocket } from './handoff-env'
import { Handover } from './handover'
import { Http2Sessions } from './http2-sessions'
import type { Launch } from './launch'
import { Lifecycle } from './lifecycle'
import { formatAddress } from './listener-address'
import { Listeners } from './listeners'
import { LongLivedConnections } from './long-lived'
import type { Mode } from './mode'
import type { ResolvedOptions } from './options'
import type { ParentLink } from './parent-link'
import type { ProcessPort } from './process-port'
import { waitUntilReady } from './readiness'
import { runReload, spawnPlan, successorCommand } from './reload'
import { notServing, ReloadGate } from './reload-result'
import type { ServiceStatus } from './service-status'
import { installSignals } from './signals'
import type { StartedSuccessor } from './successor'
import type { DrainResult, HotReloadEvents, HotReloadState, ReloadResult } from './types'

export interface GenerationContext {
  app: FastifyInstance
  options: ResolvedOptions
  generation: number
  inherited: InheritedSocket[]
  parent: ParentLink | undefined
  launch: Launch
  mode: Mode
  port: ProcessPort
  /** Where events go: the public `fastify.hotReload`. */
  events: EventEmitter<HotReloadEvents>
  /** The environment this process was started with: a successor starts from it (so a new .env is read afresh). */
  env: Record<string, string | undefined>
}

export class Generation {
  readonly generation: number
  readonly pid: number
  private readonly lifecycle: Lifecycle
  private readonly listeners: Listeners
  private readonly handover: Handover
  private readonly status: ServiceStatus
  private readonly gate = new ReloadGate()
  private readinessCheck: Promise<boolean> | undefined
  private removeSignals: (() => void) | undefined
  /** A successor being started, until it is committed or gone. */
  private starting: StartedSuccessor | undefined

  constructor (private readonly context: GenerationContext) {
    const { app, options, parent, port, mode } = context
    this.generation = context.generation
    this.pid = port.pid
    this.lifecycle = new Lifecycle(parent === undefined, context.events, (code) => port.exit(code))
    this.status = mode.status(options.pidFile, context.env, app.log)
    const tracker = new ConnectionTracker()
    const http2Sessions = new Http2Sessions()
    // A successor runs its readiness check before it adopts (accepts on) the shared sockets: a
    // release that is not ready never takes a connection.
    this.listeners = new Listeners(app, context.inherited, (server) => {
      tracker.watch(server as Parameters<ConnectionTracker['watch']>[0])
      http2Sessions.watch(server)
    }, () => this.passReadinessCheck())
    const handoff = new ConnectionHandoff(tracker, this.listeners, app.log)
    this.handover = new Handover({
      app, options, generation: this.generation, pid: this.pid, mode, parent,
      lifecycle: this.lifecycle,
      listeners: this.listeners,
      tracker,
      drainer: new Drain(tracker, http2Sessions, new LongLivedConnections(app, options.closeSpread, this.lifecycle), () => this.listeners.all, options, app.log),
      handoff,
      status: this.status,
      servingAgain: () => this.becameMain()
    })
    parent?.subscribe({
      abort: () => {
        app.log.warn('hot-reload: the previous generation aborted this successor; draining and exiting')
        void this.handover.drain('abort').then(() => this.lifecycle.end(1))
      },
      connection: (listener, handle) => handoff.receive(listener, handle),
      cut: () => this.handover.cutNow('the supervisor has too many generations draining'),
      drain: (probation) => this.handover.onSupervisorDrain(probation),
      listener: (address, handle) => this.handover.keepCopy(address, handle),
      retire: () => this.handover.endProbation(),
      resume: (successorPid, reason) => this.handover.successorLost(successorPid, reason)
    })
    mode.watchParent(port, () => {
      this.handover.endProbation()
      if (this.lifecycle.leaving || this.lifecycle.stopping) return
      app.log.warn('hot-reload: the supervisor is gone; draining and exiting')
      void this.shutdown().then(() => this.lifecycle.end(0))
    })
  }

  get state (): HotReloadState {
    return this.lifecycle.state
  }

  /** Why /health must say 503, or null when this generation is ready. */
  notReadyReason (): string | null {
    const reason = this.lifecycle.notReadyReason()
    if (reason !== null) return reason
    const app = this.context.app as FastifyInstance & { isUnderPressure?: () => boolean }
    return app.isUnderPressure?.() === true ? 'under-pressure' : null
  }

  // ---- start -------------------------------------------------------------------------------

  /** Fastify's onListen: every listen() of this instance is done. */
  async onListen (): Promise<void> {
    const { app, parent, port, options } = this.context
    this.listeners.stopIntercepting()
    const unclaimed = this.listeners.unclaimedProblem()
    if (unclaimed !== null) {
      app.log.error({ code: 'HOT_RELOAD_UNCLAIMED_SOCKET' }, `hot-reload: ${unclaimed}`)
      parent?.failed(unclaimed)
      await this.handover.drain('abort')
      this.lifecycle.end(1)
      return
    }
    this.lifecycle.to('serving')
    this.removeSignals = installSignals(port, app.log, {
      reloadSignals: options.reloadSignals,
      reload: () => { void this.reload() },
      shutdown: options.gracefulShutdown ? { forceAfterMs: options.drainTimeout + 5_000, run: () => this.shutdown() } : undefined
    })
    if (this.lifecycle.confirmed) this.becameMain()
    for (const { socket } of this.listeners.adopted) {
      app.log.info({ fd: socket.fd }, `hot-reload: adopted inherited socket ${formatAddress(socket.address)}`)
    }
    if (parent === undefined) return
    await this.context.mode.shareListeners(this.listeners, parent, app.log)
    await this.reportReady(parent)
  }

  /** This process is the serving generation now: the world is told. */
  private becameMain (): void {
    this.lifecycle.emit('serving', { generation: this.generation, pid: this.pid })
    this.status.servingPid(this.pid)
    // The first generation tells systemd it is up; a successor's predecessor sent MAINPID + READY.
    if (this.context.parent === undefined) this.status.serving(this.generation)
  }

  private async reportReady (parent: ParentLink): Promise<void> {
    if (!(await this.passReadinessCheck())) return
    const verdict = await parent.ready(this.pid, this.generation)
    if (verdict !== 'commit') return
    this.lifecycle.confirm()
    this.becameMain()
    this.context.app.log.info({ generation: this.generation }, `hot-reload: generation ${this.generation} is serving (pid ${this.pid})`)
  }

  /** Resolves true once our own readiness check passed (successors only), false when taken down meanwhile. */
  private passReadinessCheck (): Promise<boolean> {
    if (this.context.parent === undefined) return Promise.resolve(true)
    this.readinessCheck ??= (async () => {
      this.lifecycle.checking(true)
      try {
        return await waitUntilReady({
          app: this.context.app,
          healthPath: this.context.options.healthPath,
          notReadyReason: () => this.notReadyReason(),
          givenUp: () => this.lifecycle.leaving
        })
      } finally {
        this.lifecycle.checking(false)
      }
    })()
    return this.readinessCheck
  }

  // ---- reload ------------------------------------------------------------------------------

  reload (): Promise<ReloadResult> {
    const { app, parent } = this.context
    if (this.lifecycle.state === 'serving' && this.lifecycle.confirmed) {
      const delegated = this.context.mode.delegatedReload(parent)
      if (delegated !== undefined) {
        app.log.info('hot-reload: asking the supervisor for a reload')
        return delegated
      }
    }
    if (this.gate.busy) {
      app.log.info('hot-reload: a reload is already running; this request joins it')
      return this.gate.current as Promise<ReloadResult>
    }
    const refusal = this.lifecycle.reloadRefusal()
    if (refusal !== null) {
      app.log.warn(`hot-reload: reload ignored: ${refusal}`)
      return Promise.resolve(notServing(this.pid, `reload ignored: ${refusal}`, this.generation))
    }
    return this.gate.enter(() => this.runReload()).result
  }

  private async runReload (): Promise<ReloadResult> {
    const { app, options, launch, env } = this.context
    const next = this.generation + 1
    this.lifecycle.to('reloading')
    this.status.reloading(next)
    const command = successorCommand(launch, options.successor, env)
    const outcome = await runReload(next, {
      serving: () => ({ generation: this.generation, pid: this.pid }),
      plan: () => spawnPlan(command, this.listeners.forSuccessor(), next, this.pid),
      timings: { readyTimeout: options.readyTimeout, abortGrace: options.drainTimeout + 1_000 },
      cancelled: () => this.lifecycle.stopping ? 'reload cancelled: shutting down' : undefined,
      started: (successor, plan) => {
        this.starting = successor
        app.log.info({ generation: next, successorPid: successor.pid, sockets: plan.addresses },
          `hot-reload: reload started; successor pid ${successor.pid ?? '(none)'} for generation ${next}`)
        this.lifecycle.emit('reloading', { generation: next, successorPid: successor.pid })
      }
    })
    this.starting = undefined
    const result = outcome.result
    this.status.recordReload(result, this.pid)
    if (outcome.channel === undefined) {
      if (this.lifecycle.state === 'reloading') this.lifecycle.to('serving')
      this.status.reloadFailed(result.error?.message ?? 'unknown')
      app.log.error({ err: result.error, successorPid: result.successorPid },
        `hot-reload: reload failed, generation ${this.generation} keeps serving: ${result.error?.message}`)
      this.lifecycle.emit('reloadFailed', result)
      return result
    }
    this.status.serving(next, outcome.pid)
    app.log.info({ generation: next, successorPid: outcome.pid, durationMs: result.durationMs },
      `hot-reload: successor pid ${outcome.pid} ready after ${result.durationMs} ms; draining generation ${this.generation}`)
    this.lifecycle.emit('reloaded', result)
    this.handover.afterReload(outcome.channel, outcome.pid, outcome.listenerCopies)
    return result
  }

  // ---- shutdown ----------------------------------------------------------------------------

  /** SIGTERM/SIGINT: give up any reload in progress, then drain and close. */
  async shutdown (): Promise<DrainResult> {
    this.lifecycle.stop()
    // No going back now: a probation still running ends, and the drain finishes; and if we are on
    // probation ourselves, our predecessor must not take this exit for a failure.
    this.handover.endProbation()
    this.context.parent?.sendStopping()
    this.starting?.cancel('reload cancelled: shutting down')
    await this.gate.current
    return await this.handover.drain('shutdown') as DrainResult
  }

  /** Fastify's onClose: the app is closing (through us or by itself). */
  onClose (): void {
    this.listeners.stopIntercepting()
    this.removeSignals?.()
    this.removeSignals = undefined
    this.starting?.cancel('reload cancelled: the app is closing')
    if (this.lifecycle.state !== 'draining') this.lifecycle.to('closed')
  }
}

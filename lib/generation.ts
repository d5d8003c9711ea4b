// One generation's life, for the whole process: start (every instance listens or adopts, readiness,
// report ready), serve, reload into a successor; Handover takes it from there (drain, exit or
// resume). A process may hold several Fastify instances (an app and an admin server, say): each is
// an Instance (its sockets, connections and drain), attached here; the generation, its state, its
// reloads, signals and parent are one per process. State, events and the exit go through the
// Lifecycle. The steps are modules that return values: listeners, readiness, reload, drain,
// connection handoff, service status, signals, takeover; the mode says what is standalone or supervised.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { appListenedAt } from './boot-clock'
import { ConnectionBalance } from './connection-balance'
import { Audience, type HotReloadFacade } from './facade'
import { GenerationReloads } from './generation-reload'
import type { InheritedSocket, ReusePortPlan } from './handoff-env'
import { CLOSE_GRACE_MS, Handover } from './handover'
import { Instance } from './instance'
import type { Launch } from './launch'
import { Lifecycle } from './lifecycle'
import { formatAddress } from './listener-address'
import type { Mode } from './mode'
import type { ResolvedOptions } from './options'
import type { ParentLink } from './parent-link'
import type { PredecessorWatch } from './predecessor-watch'
import type { ProcessPort } from './process-port'
import type { ServiceStatus } from './service-status'
import { installShutdown, ReloadSignals } from './signals'
import { InheritedPool } from './socket-adoption'
import { takeoverStep, unclaimedMessage } from './takeover'
import type { DrainResult, HotReloadState, ReloadResult } from './types'
import { generationField } from './log-fields'
import { exitOnceLogged } from './log-settle'

export interface GenerationContext {
  /** The process-wide options (reload signals, timeouts, successor, pid file...): the first registration's. */
  options: ResolvedOptions
  /** The process's log: the first instance's. */
  log: FastifyBaseLogger
  generation: number
  inherited: InheritedSocket[]
  /** The supervisor's socket per slot: how this worker binds what it does not inherit. */
  reusePort?: ReusePortPlan
  /** How many instances the previous generation handed its sockets from (1 when not said). */
  expectedInstances: number
  parent: ParentLink | undefined
  launch: Launch
  mode: Mode
  port: ProcessPort
  /** The environment this process was started with: a successor starts from it (so a new .env is read afresh). */
  env: Record<string, string | undefined>
}

export class Generation {
  readonly generation: number
  readonly pid: number
  private readonly lifecycle: Lifecycle
  /** Every open instance's `fastify.hotReload`: the events go to each. */
  private readonly audience = new Audience()
  /** The open instances, in the order they registered. */
  private readonly instances = new Set<Instance>()
  /** Open instances whose listen() calls are done. */
  private readonly listened = new Set<Instance>()
  /** Instances that listened in this generation, closed ones included (what the supervisor is told). */
  private everListened = 0
  private readonly pool: InheritedPool
  private readonly handover: Handover
  private readonly status: ServiceStatus
  /** Its reloads: the one-at-a-time gate and the successor being started (lib/generation-reload.ts). */
  private readonly reloads: GenerationReloads
  /** Instances attached after this generation was told it serves: each is told once it listens. */
  private readonly late = new WeakSet<Instance>()
  /** Every inherited socket is claimed (or the rest was found unclaimed): instances listening later join. */
  private takenOver = false
  /** The reload signals, taken when the first instance registers (lib/signals.ts), until the last one closes. */
  private readonly signals: ReloadSignals
  private removeShutdown: (() => void) | undefined
  /** Several workers: our part in the supervisor's keep-alive balance. */
  private readonly balance: ConnectionBalance
  /** Instances the app closed itself, not through our drain: a shutdown ends only once their close is over. */
  private readonly closedByApp = new Set<Instance>()
  /** Standalone, once committed: the previous generation, killed should it never exit (lib/predecessor-watch.ts). */
  private predecessor: PredecessorWatch | undefined

  constructor (private readonly context: GenerationContext) {
    const { options, parent, port, mode, log } = context
    this.generation = context.generation
    this.pid = port.pid
    this.pool = new InheritedPool(context.inherited, context.reusePort)
    this.lifecycle = new Lifecycle(parent === undefined, this.audience, (code) => { exitOnceLogged(log, () => port.exit(code)) })
    this.status = mode.status(options.pidFile, context.env, log)
    this.handover = new Handover({
      log, options, generation: this.generation, pid: this.pid, mode, parent,
      lifecycle: this.lifecycle,
      instances: () => [...this.instances],
      status: this.status,
      servingAgain: () => this.becameMain(),
      predecessorGone: async () => { await this.predecessor?.gone() }
    })
    this.reloads = new GenerationReloads({
      context, generation: this.generation, pid: this.pid, lifecycle: this.lifecycle, status: this.status, handover: this.handover,
      instances: () => [...this.instances]
    })
    // Taken now, not at takeover: a reload signal during a slow boot waits for us to serve instead of ending the process.
    this.signals = new ReloadSignals(port, log, options.reloadSignals, () => { this.reloads.signal() }, parent !== undefined)
    this.balance = new ConnectionBalance({
      instances: () => [...this.instances],
      outlet: () => this.lifecycle.state === 'serving' ? mode.outlet(undefined, parent) : undefined,
      report: (connections) => parent?.sendLoad(connections)
    })
    parent?.subscribe({
      balance: (every) => { if (options.connectionHandoff) this.balance.start(every) },
      shed: (count) => this.balance.shed(count),
      abort: () => {
        log.warn({ hotReload: 'successor-aborted' }, `hot-reload: ${mode.name === 'supervised' ? 'the supervisor' : 'the previous generation'} aborted this successor; draining and exiting`)
        void this.handover.drain('abort').then(() => this.lifecycle.end(1))
      },
      connection: (listener, handle) => this.receiveConnection(listener, handle),
      cover: (slot, listener, handle) => this.cover(slot, listener, handle),
      uncover: (slot) => { for (const instance of this.instances) instance.uncover(slot) },
      cut: () => this.handover.cutNow('the supervisor has too many generations draining', 'supervisor-max-draining'),
      drain: (probation, rampMs) => this.handover.onSupervisorDrain(probation, rampMs),
      listener: (address, handle) => this.handover.keepCopy(address, handle),
      retire: () => this.handover.endProbation(),
      resume: (successorPid, reason) => this.handover.successorLost(successorPid, reason),
      reloading: (generation, successorPid) => this.reloads.supervisorReloading(generation, successorPid),
      reloadFinished: (result) => this.reloads.supervisorReloaded(result)
    })
    mode.watchParent(port, () => {
      this.handover.endProbation()
      if (this.lifecycle.leaving || this.lifecycle.stopping) return
      log.warn({ hotReload: 'supervisor-gone' }, 'hot-reload: the supervisor is gone; draining and exiting')
      void this.shutdown().then(() => this.lifecycle.end(this.handover.exitCode))
    })
  }

  get state (): HotReloadState {
    return this.lifecycle.state
  }

  /** A reload signal came before this generation served, and its reload waits for it to serve. */
  get reloadDeferred (): boolean {
    return this.reloads.waiting
  }

  /** True while some instance is open. */
  get open (): boolean {
    return this.instances.size > 0
  }

  /** A Fastify instance joins this process's generation (the plugin registered on it). */
  attach (app: FastifyInstance, options: ResolvedOptions, facade: HotReloadFacade): Instance {
    const instance: Instance = new Instance({
      app,
      options,
      facade,
      pool: this.pool,
      lifecycle: this.lifecycle,
      checkReadiness: this.context.parent !== undefined,
      notReadyReason: () => this.notReadyReason(instance),
      listenCalled: () => this.context.parent?.listening(),
      readinessRefused: (reason) => { void this.readinessRefused(reason) },
      notReadyYet: (reason) => this.context.parent?.notReady(reason)
    })
    this.instances.add(instance)
    this.audience.add(facade)
    if (this.serving) this.late.add(instance)
    return instance
  }

  /** Why an instance's /health must say 503, or null when it is ready. */
  notReadyReason (instance: Instance): string | null {
    let reason = this.lifecycle.notReadyReason()
    // A successor's instance that passed its own check answers ready while the process waits for its other instances.
    if (reason === 'starting' && this.listened.has(instance) && instance.ready) reason = null
    if (reason !== null) return reason
    const app = instance.app as FastifyInstance & { isUnderPressure?: () => boolean }
    return app.isUnderPressure?.() === true ? 'under-pressure' : null
  }

  // ---- start -------------------------------------------------------------------------------

  /** Fastify's onListen: every listen() of this instance is done. */
  async onListen (instance: Instance): Promise<void> {
    instance.listeners.stopIntercepting()
    if (!this.instances.has(instance)) return
    this.listened.add(instance)
    this.everListened++
    if (this.takenOver) return await this.join(instance)
    const { parent, options, log } = this.context
    const step = takeoverStep(this.context.expectedInstances, this.listened.size, this.pool.pending.length)
    if (step === 'wait') {
      log.info({ hotReload: 'waiting-for-instances', listening: this.listened.size, expected: this.context.expectedInstances },
        `hot-reload: ${this.listened.size} of ${this.context.expectedInstances} instances listen; waiting for the others to claim ${this.pool.pending.map((s) => formatAddress(s.address)).join(', ')}`)
      return
    }
    this.takenOver = true
    if (step === 'unclaimed') {
      const asked = [...this.instances].flatMap((each) => each.listeners.addresses())
      const unclaimed = unclaimedMessage(this.pool.pending, asked)
      log.error({ hotReload: 'unclaimed-socket', code: 'HOT_RELOAD_UNCLAIMED_SOCKET' }, `hot-reload: ${unclaimed}`)
      await parent?.failed(unclaimed, 'HOT_RELOAD_UNCLAIMED_SOCKET')
      await this.handover.drain('abort')
      this.lifecycle.end(1)
      return
    }
    this.lifecycle.to('serving')
    if (options.gracefulShutdown) {
      this.removeShutdown = installShutdown(log, {
        generation: this.generation,
        forceAfterMs: options.drainTimeout + CLOSE_GRACE_MS,
        run: async () => {
          await this.shutdown()
          return this.handover.exitCode
        },
        exit: (code) => this.lifecycle.end(code),
        ignoreRepeats: this.context.mode.repeatedStopSignalIgnored
      })
    }
    if (this.lifecycle.confirmed) this.becameMain()
    const ready = [...this.listened]
    for (const each of ready) this.logAdopted(each)
    if (parent === undefined) return
    parent.listening()
    // A rejection the app's boot left unhandled ends the process at the end of this turn of the
    // event loop (Node's default), and a boot that never waits on I/O gets this far first. Let it,
    // before a socket is on its way (messages queue behind it, what ended us among them) and
    // before we can say ready.
    await new Promise((resolve) => setImmediate(resolve))
    for (const each of ready) await this.context.mode.shareListeners(each.listeners, parent, each.app.log)
    await this.reportReady(parent, ready)
  }

  /** A successor's readiness check can never pass (a hook of the app answers its route): it fails now, not at readyTimeout. */
  private async readinessRefused (reason: string): Promise<void> {
    const { parent, log } = this.context
    if (parent === undefined || this.lifecycle.leaving) return
    log.error({ hotReload: 'readiness-refused', reason }, `hot-reload: ${reason}`)
    await parent.failed(reason)
    await this.handover.drain('abort')
    this.lifecycle.end(1)
  }

  /** An instance that listened after the takeover (a first generation's second instance, say). */
  private async join (instance: Instance): Promise<void> {
    const { parent, mode } = this.context
    this.logAdopted(instance)
    if (parent !== undefined && !this.lifecycle.leaving) {
      await mode.shareListeners(instance.listeners, parent, instance.app.log)
      mode.reportInstances(parent, this.everListened)
    }
    if (this.late.has(instance) && this.serving) {
      this.lifecycle.emitTo(instance.facade, 'serving', { generation: this.generation, pid: this.pid })
    }
  }

  /** Confirmed and serving (a reload may be running): the 'serving' event was sent. */
  private get serving (): boolean {
    const state = this.lifecycle.state
    return this.lifecycle.confirmed && (state === 'serving' || state === 'reloading')
  }

  private logAdopted (instance: Instance): void {
    for (const { socket } of instance.listeners.adopted) {
      instance.app.log.info({ hotReload: 'adopted-socket', fd: socket.fd, address: formatAddress(socket.address) },
        `hot-reload: adopted inherited socket ${formatAddress(socket.address)}`)
    }
  }

  /** This process is the serving generation now: the world is told. */
  private becameMain (): void {
    this.lifecycle.emit('serving', { generation: this.generation, pid: this.pid })
    this.status.servingPid(this.pid)
    // The first generation tells systemd it is up; a successor's predecessor sent MAINPID + READY.
    if (this.context.parent === undefined) this.status.serving(this.generation)
    this.reloads.served()
  }

  /** Once every instance that took over passed its own readiness check: ready, and serve if committed. */
  private async reportReady (parent: ParentLink, instances: Instance[]): Promise<void> {
    const checks = await Promise.all(instances.map((instance) => instance.passReadinessCheck()))
    if (checks.includes(false)) return
    const verdict = await parent.ready(this.pid, this.generation, this.everListened, appListenedAt())
    if (verdict !== 'commit') return
    this.predecessor = this.context.mode.watchPredecessor(parent, this.context.log)
    this.lifecycle.confirm()
    this.becameMain()
    this.context.log.info({ hotReload: 'serving', ...generationField(this.context.log, this.generation) }, `hot-reload: generation ${this.generation} is serving (pid ${this.pid})`)
  }

  /** A connection the previous generation handed over: to the instance that listens on its address. */
  private receiveConnection (listener: string, handle: object): void {
    const instances = [...this.instances]
    const owner = instances.find((instance) => instance.servesOn(listener)) ?? instances[0]
    if (owner !== undefined) owner.receive(listener, handle)
    else (handle as { close?: () => void }).close?.()
  }

  /** Another slot has no worker: accept on its socket too, while we serve (lib/slot-cover.ts). */
  private cover (slot: number, listener: string, handle: object): void {
    const state = this.lifecycle.state
    const serving = state === 'serving' || state === 'reloading'
    if (!serving || ![...this.instances].some((instance) => instance.cover(slot, listener, handle))) {
      (handle as { close?: () => void }).close?.()
    }
  }

  // ---- reload (lib/generation-reload.ts) ---------------------------------------------------

  /** One reload for the whole process, whichever instance asked: requests meanwhile join it. */
  reload (): Promise<ReloadResult> {
    return this.reloads.reload()
  }

  // ---- shutdown ----------------------------------------------------------------------------

  /** SIGTERM/SIGINT: give up any reload in progress, then drain every instance and close. */
  async shutdown (): Promise<DrainResult> {
    this.lifecycle.stop()
    // No going back now: a probation still running ends, and the drain finishes; and if we are on
    // probation ourselves, our predecessor must not take this exit for a failure.
    this.handover.endProbation()
    this.context.parent?.sendStopping()
    this.reloads.cancel('reload cancelled: shutting down')
    await this.reloads.current
    const result = await this.handover.drain('shutdown') as DrainResult
    // The app's own handler of the same signal may have closed an instance (fastify-cli's server.js
    // does): ending the process now would cut its onClose hooks short. A second close() of a
    // Fastify instance resolves once the first one is over.
    await Promise.all([...this.closedByApp].map(async (instance) => { await instance.app.close().catch(() => {}) }))
    return result
  }

  /**
   * Fastify's onClose for one instance: it is closing (through our drain or by itself). While
   * other instances are open the generation serves on with them (this one's sockets are no longer
   * handed on); the last one closes the generation.
   */
  onClose (instance: Instance): void {
    instance.listeners.stopIntercepting()
    this.instances.delete(instance)
    this.listened.delete(instance)
    const draining = this.lifecycle.state === 'draining'
    if (!draining) this.closedByApp.add(instance)
    if (this.instances.size > 0) {
      // Our own drain closes every instance and then says 'drained' to each.
      if (!draining) this.audience.delete(instance.facade)
      return
    }
    this.balance.stop()
    this.reloads.cancel('reload cancelled: the app is closing')
    // Our drain closes the app, and the process exits once the app's own onClose hooks have run:
    // until then a reload signal is still ignored, and a SIGTERM finds the shutdown under way,
    // instead of their default action killing the process in the middle of those hooks.
    if (draining) return
    this.signals.release()
    this.removeShutdown?.()
    this.removeShutdown = undefined
    this.lifecycle.to('closed')
    // Closed by the app, not by a drain: the process ends as it would without us.
    this.context.parent?.release()
  }
}

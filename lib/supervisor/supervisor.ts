// The stable-PID supervisor: keeps a copy of every listening socket (from systemd or from the first
// worker), runs the app as worker generations of `workers` processes each (every worker accepts on
// the same inherited sockets), reloads by starting all of generation N+1 with the sockets and, once
// every one is ready, telling all of N to drain; restarts a crashed worker in its slot with backoff,
// and forwards shutdown. It never accepts a connection itself. Starting workers is lib/reload.ts.
import type { ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type { InheritedSocket } from '../handoff-env'
import { unwrap, wrap, type ChildMessage } from '../ipc'
import { formatAddress } from '../listener-address'
import { runCohort } from '../reload'
import { notServing, ReloadGate, succeeded, toWire, type WireReloadResult } from '../reload-result'
import type { ServiceStatus } from '../service-status'
import { send, type StartedSuccessor } from '../successor'
import type { ReloadResult } from '../types'
import { HeldSockets } from './held-sockets'
import { Probations } from './probation'
import { RestartPolicy } from './restart-policy'
import type { Cohort, Worker, WorkerState } from './worker'

export interface SupervisorLogger {
  info (obj: object | string, msg?: string): void
  warn (obj: object | string, msg?: string): void
  error (obj: object | string, msg?: string): void
}

export interface SupervisorOptions {
  /** The worker's command: [executable, ...args]. */
  command: string[]
  cwd: string
  env: Record<string, string | undefined>
  readyTimeout: number
  drainTimeout: number
  restartDelay: number
  restartMaxDelay: number
  /** Old generations that may drain at once; beyond it the oldest is told to cut what is left. */
  maxDraining: number
  /**
   * How long (ms) a new generation must serve before its predecessor may finish; should it die
   * sooner, the predecessor serves again. 0 turns it off (a crashed worker is then restarted).
   */
  probation: number
  /** Sockets systemd passed us (socket activation); more may come from the first worker. */
  activated: InheritedSocket[]
  /** Worker processes per generation (default 1). */
  workers?: number
  /** A reload replaces this many slots at a time (rolling); default all at once. */
  reloadBatch?: number
  log: SupervisorLogger
  /** systemd and the like. */
  status: ServiceStatus
}

export interface SupervisorStatus {
  pid: number
  state: 'starting' | 'serving' | 'reloading' | 'restarting' | 'stopping'
  generation: number
  /** Workers per generation. */
  workersPerGeneration: number
  uptimeMs: number
  sockets: string[]
  workers: Array<{ generation: number, slot: number, pid: number, state: WorkerState, uptimeMs: number, restarts: number }>
  lastReload?: WireReloadResult
  restarts: number
}

/** Why workers are started: `batch` is one step of a rolling reload (the reload itself is accounted once). */
type Launch = 'start' | 'reload' | 'restart' | 'batch'

export class Supervisor extends EventEmitter {
  private readonly workers = new Map<number, Worker>()
  private readonly gate = new ReloadGate()
  /** One backoff per slot: a crash loop in one slot does not slow the others' restarts. */
  private readonly restarts = new Map<number, RestartPolicy>()
  private readonly probations: Probations
  private readonly slots: number[]
  /** The serving generation's workers. */
  private current: Cohort | undefined
  private generation = 0
  /** How many Fastify instances the held sockets belong to: a serving worker's word (the next worker waits for that many). */
  private instances = 1
  private starting: StartedSuccessor[] = []
  private lastReload: ReloadResult | undefined
  private stopping: Promise<number> | undefined
  private lastExitCode = 0
  private readonly startedAt = Date.now()
  /** The first generation's start, while it runs: a reload asked meanwhile waits for it. */
  private firstStart: Promise<void> | undefined
  private readonly held: HeldSockets
  /** The new generation while a rolling reload builds it. */
  private rolling: Cohort | undefined
  /** Round robin over the serving workers for connections handed over by a draining one. */
  private nextTarget = 0

  constructor (private readonly options: SupervisorOptions) {
    super()
    this.slots = Array.from({ length: options.workers ?? 1 }, (_, slot) => slot)
    for (const slot of this.slots) this.restarts.set(slot, new RestartPolicy(options))
    this.probations = new Probations(options.probation, (worker) => this.workers.has(worker.pid), options.log)
    this.held = new HeldSockets(options.activated, this.slots.length, process.versions.node)
    if (this.held.sharedBecause !== undefined) {
      options.log.warn({ supervisor: 'shared-socket', reason: this.held.sharedBecause },
        `supervisor: the ${this.slots.length} workers share one listening socket (${this.held.sharedBecause}); under keep-alive load one worker may take most connections`)
    }
  }

  /** The serving worker of the lowest slot. */
  get servingPid (): number | undefined {
    return this.servingWorkers()[0]?.pid
  }

  /** Starts the first generation. Resolves once it serves (restarting with backoff until then). */
  async start (): Promise<void> {
    this.firstStart = (async () => {
      // Nothing to inherit yet: one worker binds, and the supervisor keeps its sockets for the rest.
      const first = this.held.all().length === 0 && this.slots.length > 1 ? [0] : this.slots
      const result = await this.launch('start', first)
      if (!result.ok) return this.scheduleRestart(0)
      if (first.length < this.slots.length) await this.fill()
    })()
    try {
      await this.firstStart
    } finally {
      this.firstStart = undefined
    }
  }

  status (): SupervisorStatus {
    const now = Date.now()
    const restarting = [...this.restarts.values()].some((policy) => policy.pending)
    const state = this.stopping !== undefined
      ? 'stopping'
      : this.gate.busy ? 'reloading' : this.current !== undefined ? 'serving' : restarting ? 'restarting' : 'starting'
    return {
      pid: process.pid,
      state,
      generation: this.current?.generation ?? 0,
      workersPerGeneration: this.slots.length,
      uptimeMs: now - this.startedAt,
      sockets: this.held.all().map((socket) => formatAddress(socket.address)),
      workers: [...this.workers.values()].map((w) => ({
        generation: w.generation, slot: w.slot, pid: w.pid, state: w.state, uptimeMs: now - w.startedAt, restarts: this.restarts.get(w.slot)?.restarts ?? 0
      })),
      lastReload: this.lastReload === undefined ? undefined : toWire(this.lastReload),
      restarts: [...this.restarts.values()].reduce((sum, policy) => sum + policy.restarts, 0)
    }
  }

  /** Starts all of generation N+1 with the sockets; N drains once every new worker is ready. A failure leaves N serving. */
  reload (): Promise<ReloadResult> {
    if (this.gate.busy) {
      this.options.log.info({ supervisor: 'reload-coalesced' }, 'supervisor: a reload is already running; this request joins it')
      return this.gate.current as Promise<ReloadResult>
    }
    if (this.stopping === undefined && this.current === undefined && this.firstStart !== undefined) {
      // A deploy may land while the first generation still boots the older code: reload once it serves.
      this.options.log.info({ supervisor: 'reload-deferred' }, 'supervisor: a reload asked while the first generation starts runs once it serves')
      return this.firstStart.then(() => this.reload())
    }
    const serving = this.servingWorkers()
    if (this.stopping !== undefined || serving.length === 0) {
      const why = this.stopping !== undefined ? 'the supervisor is stopping' : 'no worker is serving yet'
      return Promise.resolve(notServing(serving[0]?.pid ?? 0, `reload ignored: ${why}`, this.current?.generation ?? 0))
    }
    const batch = this.options.reloadBatch ?? this.slots.length
    return this.gate.enter(() => batch < this.slots.length ? this.rollingReload(batch) : this.launch('reload', this.slots)).result
  }

  /**
   * --reload-batch K: K slots at a time. Each batch's new workers join the new generation and the
   * old workers of those slots drain on probation; a failure in any batch takes the whole reload
   * back (the new workers drain away, the replaced old ones serve again), so it is all or nothing.
   */
  private async rollingReload (batch: number): Promise<ReloadResult> {
    const { options } = this
    const previous = this.current as Cohort
    const next = this.generation + 1
    const startedAt = performance.now()
    options.status.reloading(next)
    const cohort: Cohort = { generation: next, workers: new Map() }
    this.rolling = cohort
    const replaced: Worker[] = []
    let failure: ReloadResult | undefined
    for (let i = 0; i < this.slots.length && failure === undefined; i += batch) {
      const slots = this.slots.slice(i, i + batch)
      const step = await this.launch('batch', slots, cohort)
      if (!step.ok) {
        failure = step
        break
      }
      for (const slot of slots) {
        const old = previous.workers.get(slot)
        if (old === undefined) continue
        old.state = 'draining'
        send(old.child, { type: 'drain', probation: true })
        replaced.push(old)
      }
    }
    this.rolling = undefined
    let result: ReloadResult
    if (failure !== undefined) {
      const reason = `generation ${next} failed in a rolling reload: ${failure.error?.message}`
      for (const worker of cohort.workers.values()) {
        worker.state = 'draining'
        send(worker.child, { type: 'drain', probation: false })
      }
      const back = replaced.filter((w) => this.workers.has(w.pid) && w.child.connected)
      this.probations.serveAgain(back, (w) => this.held.forSlot(w.slot), failure.successorPid ?? 0, reason)
      for (const worker of back) worker.state = 'serving'
      result = failure
      options.log.error({ supervisor: 'generation-failed', trigger: 'reload', generation: next, servingGeneration: previous.generation, err: failure.error },
        `supervisor: reload failed, generation ${previous.generation} keeps serving: ${failure.error?.message}`)
      options.status.reloadFailed(failure.error?.message ?? 'unknown')
      if (previous.workers.size < this.slots.length) void this.fill()
    } else {
      this.current = cohort
      this.generation = next
      result = succeeded(next, this.servingPid ?? 0, startedAt)
      const pids = [...cohort.workers.values()].map((w) => w.pid)
      options.log.info({ supervisor: 'generation-serving', generation: next, workerPid: pids[0], workerPids: pids, durationMs: result.durationMs },
        `supervisor: generation ${next} (pid ${pids.join(', ')}) is serving after ${result.durationMs} ms (rolling, ${batch} at a time)`)
      this.probations.endAll([...this.cohorts()].filter((c) => c !== cohort))
      this.probations.watch(cohort, previous)
      this.limitDraining()
      options.status.serving(next)
      if (cohort.workers.size < this.slots.length) void this.fill()
    }
    this.lastReload = result
    options.status.recordReload(result, process.pid)
    this.emit(result.ok ? 'serving' : 'failed', result)
    return result
  }

  /** SIGTERM/SIGINT: every worker drains and exits; resolves with the exit code to use. */
  shutdown (signal: NodeJS.Signals): Promise<number> {
    this.stopping ??= this.runShutdown(signal)
    return this.stopping
  }

  /** Every worker that accepts now: the serving generation's, and during a rolling reload the new one's too. */
  private servingWorkers (): Worker[] {
    const cohorts = [this.current, this.rolling].filter((c): c is Cohort => c !== undefined)
    return cohorts.flatMap((c) => [...c.workers.values()]).filter((w) => w.state === 'serving').sort((a, b) => a.slot - b.slot)
  }

  /**
   * Starts workers for `slots` of a new generation; once all are ready they are its cohort and it
   * serves (the previous one drains). A 'restart' of some slots while others serve joins them instead.
   */
  private async launch (why: Launch, slots: number[], into?: Cohort): Promise<ReloadResult> {
    const next = into?.generation ?? this.generation + 1
    const { options } = this
    if (why === 'reload') options.status.reloading(next)
    const started = new Map<number, Worker>()
    const command = { execPath: options.command[0], args: options.command.slice(1), cwd: options.cwd, env: { ...options.env, NOTIFY_SOCKET: undefined } }
    const outcome = await runCohort(next, slots, {
      serving: () => ({ generation: this.current?.generation ?? 0, pid: this.servingPid ?? 0 }),
      plan: (slot) => this.held.planFor(slot, command, next, this.instances),
      timings: { readyTimeout: options.readyTimeout, abortGrace: options.drainTimeout + 1_000, supervised: true },
      cancelled: () => this.stopping !== undefined ? 'cancelled: the supervisor is stopping' : undefined,
      started: (successor, plan, slot) => {
        this.starting.push(successor)
        if (successor.child !== undefined && successor.pid !== undefined) started.set(slot, this.track(successor.child, successor.pid, next, slot))
        options.log.info({ supervisor: 'generation-starting', trigger: why, generation: next, slot, workerPid: successor.pid, sockets: plan.addresses },
          `supervisor: ${why}: starting generation ${next}${this.slots.length > 1 ? ` slot ${slot}` : ''} (pid ${successor.pid ?? 'none'})`)
      }
    })
    this.starting = []
    const result = outcome.result
    if (outcome.members === undefined) {
      for (const worker of started.values()) this.workers.delete(worker.pid)
      options.log.error({
        supervisor: this.stopping !== undefined ? 'generation-cancelled' : 'generation-failed',
        trigger: why,
        generation: next,
        servingGeneration: this.current?.generation,
        err: result.error,
        workerPid: result.successorPid
      },
        `supervisor: ${why} failed${this.current ? `, generation ${this.current.generation} keeps serving` : ''}: ${result.error?.message}`)
      if (why === 'reload') options.status.reloadFailed(result.error?.message ?? 'unknown')
    } else if (into !== undefined) {
      for (const worker of started.values()) this.join(into, worker)
    } else {
      const cohort: Cohort = { generation: next, workers: new Map() }
      for (const worker of started.values()) this.join(cohort, worker)
      this.serve(cohort, result.durationMs)
    }
    if (why === 'reload') {
      this.lastReload = result
      options.status.recordReload(result, process.pid)
    }
    this.emit(result.ok ? 'serving' : 'failed', result)
    return result
  }

  private join (cohort: Cohort, worker: Worker): void {
    worker.state = 'serving'
    worker.servingSince = Date.now()
    worker.cohort = cohort
    cohort.workers.set(worker.slot, worker)
    this.instances = worker.instances ?? this.instances
  }

  /** Slots of the serving generation without a worker (the first start, or one that crashed) get one. */
  private async fill (): Promise<void> {
    const cohort = this.current
    if (cohort === undefined || this.stopping !== undefined) return
    const missing = this.slots.filter((slot) => !cohort.workers.has(slot))
    if (missing.length === 0) return
    const result = await this.launch('restart', missing, cohort)
    if (!result.ok) for (const slot of missing) if (!cohort.workers.has(slot)) this.scheduleRestart(slot)
  }

  /** A new generation is ready and committed: it serves, the previous one drains. */
  private serve (cohort: Cohort, durationMs: number): void {
    const previous = this.current
    this.current = cohort
    this.generation = cohort.generation
    const pids = [...cohort.workers.values()].map((w) => w.pid)
    this.options.log.info({ supervisor: 'generation-serving', generation: cohort.generation, workerPid: pids[0], workerPids: pids, durationMs },
      `supervisor: generation ${cohort.generation} (pid ${pids.join(', ')}) is serving after ${durationMs} ms`)
    this.probations.endAll(this.cohorts())
    if (previous !== undefined && previous.workers.size > 0) this.probations.begin(cohort, previous)
    this.limitDraining()
    this.options.status.serving(cohort.generation)
  }

  private cohorts (): Set<Cohort> {
    const cohorts = new Set<Cohort>()
    for (const worker of this.workers.values()) if (worker.cohort !== undefined) cohorts.add(worker.cohort)
    return cohorts
  }

  /** Like HAProxy's mworker-max-reloads: the oldest draining generations beyond the limit end now. */
  private limitDraining (): void {
    const draining = [...this.cohorts()].filter((c) => c !== this.current && [...c.workers.values()].some((w) => w.state === 'draining'))
      .sort((a, b) => a.generation - b.generation)
    for (const cohort of draining.slice(0, Math.max(0, draining.length - this.options.maxDraining))) {
      if (cohort.cut === true) continue
      cohort.cut = true
      for (const worker of cohort.workers.values()) {
        this.options.log.warn({ supervisor: 'max-draining-cut', workerPid: worker.pid, generation: worker.generation, draining: draining.length, maxDraining: this.options.maxDraining },
          `supervisor: ${draining.length} generations draining, more than --max-draining (${this.options.maxDraining}); generation ${worker.generation} (pid ${worker.pid}) cuts what it still has open`)
        send(worker.child, { type: 'cut' })
      }
    }
  }

  private track (child: ChildProcess, pid: number, generation: number, slot: number): Worker {
    const worker: Worker = { generation, slot, pid, child, state: 'starting', startedAt: Date.now() }
    this.workers.set(pid, worker)
    child.on('message', (raw: unknown, handle: unknown) => this.onWorkerMessage(worker, unwrap(raw) as ChildMessage | undefined, handle))
    child.on('exit', (code, signal) => this.onWorkerExit(worker, code, signal))
    child.on('error', (err) => this.options.log.warn({ supervisor: 'worker-channel-error', err, workerPid: pid }, 'supervisor: worker channel error'))
    return worker
  }

  private onWorkerMessage (worker: Worker, message: ChildMessage | undefined, handle: unknown): void {
    if (message === undefined) return
    if (message.type === 'ready' || message.type === 'instances') {
      const count = message.type === 'ready' ? message.instances : message.count
      if (typeof count === 'number' && Number.isSafeInteger(count) && count >= 1) worker.instances = count
      if (worker.cohort === this.current && worker.instances !== undefined) this.instances = worker.instances
    } else if (message.type === 'listener') {
      this.holdListener(worker, message.address, handle)
    } else if (message.type === 'connection') {
      // A draining worker hands an idle keep-alive connection to a serving one, through us.
      const release = (): void => { (handle as { close?: () => void } | undefined)?.close?.() }
      const targets = this.servingWorkers().filter((w) => w !== worker && w.child.connected)
      if (targets.length === 0 || typeof handle !== 'object' || handle === null) return release()
      const target = targets[this.nextTarget++ % targets.length]
      target.child.send(wrap({ type: 'connection', listener: message.listener }), handle as Socket, release)
    } else if (message.type === 'stopping') {
      // Stopped on purpose (a signal sent to the worker itself): its exit is not a failed release.
      if (worker.cohort?.predecessor !== undefined) this.probations.end(worker.cohort)
    } else if (message.type === 'reload-request') {
      void this.reload().then((result) => send(worker.child, { type: 'reload-result', id: message.id, result: toWire(result) }))
    }
  }

  /** A socket a worker bound itself: we keep it for every later generation. */
  private holdListener (worker: Worker, name: string, handle: unknown): void {
    const kept = this.held.hold(worker.slot, name, handle)
    if (kept === null) {
      this.options.log.warn({ supervisor: 'listener-ignored', workerPid: worker.pid }, `supervisor: ignored a listener message without a usable socket (${name})`)
    } else if (kept !== undefined) {
      this.options.log.info({ supervisor: 'holding-socket', slot: worker.slot, fd: (handle as { fd: number }).fd, address: kept }, `supervisor: holding listening socket ${name} for later generations`)
    }
  }

  private onWorkerExit (worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(worker.pid)
    const cohort = worker.cohort
    if (cohort !== undefined && cohort.workers.get(worker.slot) === worker) cohort.workers.delete(worker.slot)
    const how = signal === null ? `code ${code}` : `signal ${signal}`
    if (cohort !== undefined && cohort === this.current) this.lastExitCode = code ?? 1
    if (worker.state === 'draining' || this.stopping !== undefined) {
      this.options.log.info({ supervisor: 'worker-exited', workerPid: worker.pid, generation: worker.generation, slot: worker.slot, code, signal },
        `supervisor: generation ${worker.generation} (pid ${worker.pid}) exited with ${how}`)
      if (cohort !== undefined && cohort === this.current && cohort.workers.size === 0) this.current = undefined
    } else if (worker.state === 'serving') {
      this.options.log.error({ supervisor: 'worker-crashed', workerPid: worker.pid, generation: worker.generation, slot: worker.slot, code, signal }, `supervisor: generation ${worker.generation} (pid ${worker.pid}) crashed with ${how}`)
      if (cohort !== undefined && cohort === this.current) this.replaceCrashed(cohort, worker, how)
    }
    // A worker still starting: the launch that started it reports the failure.
    this.emit('worker-exit', worker.pid)
  }

  /**
   * A serving worker crashed: within the probation its generation's predecessor serves again (and
   * the rest of this generation drains away); after it, the slot gets a new worker.
   */
  private replaceCrashed (cohort: Cohort, worker: Worker, how: string): void {
    const resumed = this.probations.resume(cohort, worker, how, (w) => this.held.forSlot(w.slot))
    if (resumed !== undefined) {
      const { predecessor, reason } = resumed
      for (const w of cohort.workers.values()) {
        w.state = 'draining'
        send(w.child, { type: 'drain', probation: false })
      }
      for (const w of predecessor.workers.values()) {
        w.state = 'serving'
        w.servingSince = Date.now()
        this.instances = w.instances ?? this.instances
      }
      this.current = predecessor
      this.generation = Math.max(this.generation, cohort.generation)
      this.options.log.error({ supervisor: 'serves-again', workerPid: worker.pid, resumedPid: [...predecessor.workers.values()][0]?.pid, generation: predecessor.generation, reason },
        `supervisor: ${reason}; generation ${predecessor.generation} (pid ${[...predecessor.workers.values()].map((w) => w.pid).join(', ')}) serves again`)
      this.options.status.resumed(predecessor.generation, reason)
      if (predecessor.workers.size < this.slots.length) void this.fill()
      return
    }
    const policy = this.restarts.get(worker.slot) as RestartPolicy
    policy.crashedAfter(worker.servingSince === undefined ? undefined : Date.now() - worker.servingSince)
    if (cohort.workers.size === 0) this.current = undefined
    // While a reload is starting a new generation, it takes over; otherwise restart.
    if (!this.gate.busy) this.scheduleRestart(worker.slot)
  }

  /** After the slot's backoff: a new worker joins the serving generation, or (none serves) a new generation starts. */
  private scheduleRestart (slot: number): void {
    if (this.stopping !== undefined) return
    const policy = this.restarts.get(slot) as RestartPolicy
    const scheduled = policy.schedule(() => {
      const run = this.current === undefined ? this.launch('restart', this.held.all().length === 0 ? [slot] : this.slots) : this.launch('restart', [slot], this.current)
      void run.then((result) => {
        if (!result.ok && (this.current === undefined || !this.current.workers.has(slot))) this.scheduleRestart(slot)
        else if (result.ok) void this.fill()
      })
    })
    if (scheduled !== undefined) {
      this.options.log.warn({ supervisor: 'restart-scheduled', slot, delayMs: scheduled.delay, attempt: scheduled.attempt },
        `supervisor: restarting the worker${this.slots.length > 1 ? ` of slot ${slot}` : ''} in ${scheduled.delay} ms (attempt ${scheduled.attempt})`)
    }
  }

  private async runShutdown (signal: NodeJS.Signals): Promise<number> {
    this.options.log.info({ supervisor: 'stopping', signal }, `supervisor: ${signal} received; stopping every worker gracefully`)
    this.options.status.stopping(process.pid)
    for (const policy of this.restarts.values()) policy.cancel()
    for (const successor of this.starting) successor.cancel('cancelled: the supervisor is stopping')
    await this.gate.current?.catch(() => {})
    for (const worker of this.workers.values()) {
      try { process.kill(worker.pid, 'SIGTERM') } catch {}
    }
    const deadline = Date.now() + this.options.drainTimeout + 5_000
    while (this.workers.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 100)
        this.once('worker-exit', () => { clearTimeout(timer); resolve(undefined) })
      })
    }
    for (const worker of this.workers.values()) {
      this.options.log.error({ supervisor: 'worker-killed', workerPid: worker.pid, generation: worker.generation },
        `supervisor: generation ${worker.generation} (pid ${worker.pid}) did not stop in time; killing it`)
      try { process.kill(worker.pid, 'SIGKILL') } catch {}
      this.lastExitCode = 1
    }
    return this.lastExitCode
  }
}

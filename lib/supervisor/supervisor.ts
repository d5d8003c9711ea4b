// The stable-PID supervisor: keeps a copy of every listening socket (from systemd or from the first
// worker), runs the app as worker generations, reloads by starting generation N+1 with the sockets
// and telling N to drain, restarts a crashed worker with backoff, and forwards shutdown. It never
// accepts a connection itself. A reload is the same one a standalone generation runs (lib/reload.ts).
import type { ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type { InheritedSocket } from '../handoff-env'
import { unwrap, wrap, type ChildMessage } from '../ipc'
import { fdNameToAddress, formatAddress } from '../listener-address'
import { runReload, spawnPlan } from '../reload'
import { notServing, ReloadGate, toWire, type WireReloadResult } from '../reload-result'
import type { ServiceStatus } from '../service-status'
import { send, type StartedSuccessor } from '../successor'
import type { ReloadResult } from '../types'
import { Probations, type HeldSocket } from './probation'
import { RestartPolicy } from './restart-policy'
import type { Worker, WorkerState } from './worker'

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
  log: SupervisorLogger
  /** systemd and the like. */
  status: ServiceStatus
}

export interface SupervisorStatus {
  pid: number
  state: 'starting' | 'serving' | 'reloading' | 'restarting' | 'stopping'
  generation: number
  uptimeMs: number
  sockets: string[]
  workers: Array<{ generation: number, pid: number, state: WorkerState, uptimeMs: number }>
  lastReload?: WireReloadResult
  restarts: number
}

export class Supervisor extends EventEmitter {
  private readonly sockets: HeldSocket[]
  private readonly workers = new Map<number, Worker>()
  private readonly gate = new ReloadGate()
  private readonly restart: RestartPolicy
  private readonly probations: Probations
  private current: Worker | undefined
  private generation = 0
  /** How many Fastify instances the held sockets belong to: the serving worker's word (the next worker waits for that many). */
  private instances = 1
  private starting: StartedSuccessor | undefined
  private lastReload: ReloadResult | undefined
  private stopping: Promise<number> | undefined
  private lastExitCode = 0
  private readonly startedAt = Date.now()
  /** The first generation's start, while it runs: a reload asked meanwhile waits for it. */
  private firstStart: Promise<void> | undefined

  constructor (private readonly options: SupervisorOptions) {
    super()
    this.sockets = options.activated.map((socket) => ({ address: socket.address, fd: socket.fd }))
    this.restart = new RestartPolicy(options)
    this.probations = new Probations(options.probation, (worker) => this.workers.has(worker.pid), options.log)
  }

  get servingPid (): number | undefined {
    return this.current?.pid
  }

  /** Starts the first generation. Resolves once one serves (restarting with backoff until then). */
  async start (): Promise<void> {
    this.firstStart = (async () => {
      const result = await this.launch('start')
      if (!result.ok) this.scheduleRestart()
    })()
    try {
      await this.firstStart
    } finally {
      this.firstStart = undefined
    }
  }

  status (): SupervisorStatus {
    const now = Date.now()
    const state = this.stopping !== undefined
      ? 'stopping'
      : this.gate.busy ? 'reloading' : this.current !== undefined ? 'serving' : this.restart.pending ? 'restarting' : 'starting'
    return {
      pid: process.pid,
      state,
      generation: this.current?.generation ?? 0,
      uptimeMs: now - this.startedAt,
      sockets: this.sockets.map((socket) => formatAddress(socket.address)),
      workers: [...this.workers.values()].map((w) => ({ generation: w.generation, pid: w.pid, state: w.state, uptimeMs: now - w.startedAt })),
      lastReload: this.lastReload === undefined ? undefined : toWire(this.lastReload),
      restarts: this.restart.restarts
    }
  }

  /** Starts generation N+1 with the sockets; N drains once N+1 is ready. A failure leaves N serving. */
  reload (): Promise<ReloadResult> {
    if (this.gate.busy) {
      this.options.log.info({ supervisor: 'reload-coalesced' }, 'supervisor: a reload is already running; this request joins it')
      return this.gate.current as Promise<ReloadResult>
    }
    if (this.stopping === undefined && this.current === undefined && this.firstStart !== undefined) {
      // A deploy may land while the first generation still boots the older code: reload once it serves.
      this.options.log.info('supervisor: a reload asked while the first generation starts runs once it serves')
      return this.firstStart.then(() => this.reload())
    }
    if (this.stopping !== undefined || this.current === undefined || this.current.state !== 'serving') {
      const why = this.stopping !== undefined ? 'the supervisor is stopping' : 'no worker is serving yet'
      return Promise.resolve(notServing(this.current?.pid ?? 0, `reload ignored: ${why}`, this.current?.generation ?? 0))
    }
    return this.gate.enter(() => this.launch('reload')).result
  }

  /** SIGTERM/SIGINT: every worker drains and exits; resolves with the exit code to use. */
  shutdown (signal: NodeJS.Signals): Promise<number> {
    this.stopping ??= this.runShutdown(signal)
    return this.stopping
  }

  /** Spawns the next generation and, once it is ready, makes it the serving one. */
  private async launch (why: 'start' | 'reload' | 'restart'): Promise<ReloadResult> {
    const next = this.generation + 1
    const { options } = this
    if (why === 'reload') options.status.reloading(next)
    let worker: Worker | undefined
    const command = { execPath: options.command[0], args: options.command.slice(1), cwd: options.cwd, env: { ...options.env, NOTIFY_SOCKET: undefined } }
    const outcome = await runReload(next, {
      serving: () => ({ generation: this.current?.generation ?? 0, pid: this.current?.pid ?? 0 }),
      plan: () => spawnPlan(command, { addresses: this.sockets.map((s) => s.address), fds: this.sockets.map((s) => s.fd) }, next, process.pid, true, this.instances),
      timings: { readyTimeout: options.readyTimeout, abortGrace: options.drainTimeout + 1_000, supervised: true },
      cancelled: () => this.stopping !== undefined ? 'cancelled: the supervisor is stopping' : undefined,
      started: (successor, plan) => {
        this.starting = successor
        if (successor.child !== undefined && successor.pid !== undefined) worker = this.track(successor.child, successor.pid, next)
        options.log.info({ supervisor: 'generation-starting', trigger: why, generation: next, workerPid: successor.pid, sockets: plan.addresses },
          `supervisor: ${why}: starting generation ${next} (pid ${successor.pid ?? 'none'})`)
      }
    })
    this.starting = undefined
    const result = outcome.result
    if (outcome.channel === undefined) {
      if (worker !== undefined) this.workers.delete(worker.pid)
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
    } else {
      this.serve(worker as Worker, next, result.durationMs)
    }
    if (why === 'reload') {
      this.lastReload = result
      options.status.recordReload(result, process.pid)
    }
    this.emit(result.ok ? 'serving' : 'failed', result)
    return result
  }

  /** A new generation is ready and committed: it serves, the previous one drains. */
  private serve (serving: Worker, next: number, durationMs: number): void {
    const previous = this.current
    serving.state = 'serving'
    serving.servingSince = Date.now()
    this.current = serving
    this.instances = serving.instances ?? 1
    this.generation = next
    this.options.log.info({ supervisor: 'generation-serving', generation: next, workerPid: serving.pid, durationMs },
      `supervisor: generation ${next} (pid ${serving.pid}) is serving after ${durationMs} ms`)
    this.probations.endAll(this.workers.values())
    if (previous !== undefined && this.workers.has(previous.pid)) this.probations.begin(serving, previous)
    this.limitDraining()
    this.options.status.serving(next)
  }

  /** Like HAProxy's mworker-max-reloads: the oldest draining generations beyond the limit end now. */
  private limitDraining (): void {
    const draining = [...this.workers.values()].filter((w) => w.state === 'draining').sort((a, b) => a.generation - b.generation)
    for (const worker of draining.slice(0, Math.max(0, draining.length - this.options.maxDraining))) {
      if (worker.cut === true) continue
      worker.cut = true
      this.options.log.warn({ supervisor: 'max-draining-cut', workerPid: worker.pid, generation: worker.generation, draining: draining.length, maxDraining: this.options.maxDraining },
        `supervisor: ${draining.length} generations draining, more than --max-draining (${this.options.maxDraining}); generation ${worker.generation} (pid ${worker.pid}) cuts what it still has open`)
      send(worker.child, { type: 'cut' })
    }
  }

  private track (child: ChildProcess, pid: number, generation: number): Worker {
    const worker: Worker = { generation, pid, child, state: 'starting', startedAt: Date.now() }
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
      if (worker === this.current && worker.instances !== undefined) this.instances = worker.instances
    } else if (message.type === 'listener') {
      this.holdListener(worker, message.address, handle)
    } else if (message.type === 'connection') {
      // A draining worker hands an idle keep-alive connection to the serving one, through us.
      const target = this.current
      const release = (): void => { (handle as { close?: () => void } | undefined)?.close?.() }
      if (target === undefined || target === worker || !target.child.connected || typeof handle !== 'object' || handle === null) return release()
      target.child.send(wrap({ type: 'connection', listener: message.listener }), handle as Socket, release)
    } else if (message.type === 'stopping') {
      // Stopped on purpose (a signal sent to the worker itself): its exit is not a failed release.
      if (worker.predecessor !== undefined) this.probations.end(worker)
    } else if (message.type === 'reload-request') {
      void this.reload().then((result) => send(worker.child, { type: 'reload-result', id: message.id, result: toWire(result) }))
    }
  }

  /** A socket the first worker bound itself: we keep it for every later generation. */
  private holdListener (worker: Worker, name: string, handle: unknown): void {
    const address = fdNameToAddress(encodeURIComponent(name))
    const fd = (handle as { fd?: unknown } | undefined)?.fd
    if (address === null || typeof fd !== 'number') {
      this.options.log.warn({ supervisor: 'listener-ignored', workerPid: worker.pid }, `supervisor: ignored a listener message without a usable socket (${name})`)
      return
    }
    if (this.sockets.some((s) => formatAddress(s.address) === formatAddress(address))) return
    this.sockets.push({ address, fd, handle })
    this.options.log.info({ supervisor: 'holding-socket', fd, address: formatAddress(address) }, `supervisor: holding listening socket ${name} for later generations`)
  }

  private onWorkerExit (worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(worker.pid)
    const how = signal === null ? `code ${code}` : `signal ${signal}`
    if (worker === this.current) this.lastExitCode = code ?? 1
    if (worker.state === 'draining' || this.stopping !== undefined) {
      this.options.log.info({ supervisor: 'worker-exited', workerPid: worker.pid, generation: worker.generation, code, signal },
        `supervisor: generation ${worker.generation} (pid ${worker.pid}) exited with ${how}`)
      if (worker === this.current) this.current = undefined
    } else if (worker.state === 'serving') {
      this.options.log.error({ supervisor: 'worker-crashed', workerPid: worker.pid, generation: worker.generation, code, signal },
        `supervisor: generation ${worker.generation} (pid ${worker.pid}) crashed with ${how}`)
      if (worker === this.current) this.replaceCrashed(worker, how)
    }
    // A worker still starting: the launch that started it reports the failure.
    this.emit('worker-exit', worker.pid)
  }

  /** The serving worker crashed: its predecessor serves again (probation), or a new one is started. */
  private replaceCrashed (worker: Worker, how: string): void {
    const resumed = this.probations.resume(worker, how, this.sockets)
    if (resumed !== undefined) {
      const { predecessor, reason } = resumed
      predecessor.state = 'serving'
      this.instances = predecessor.instances ?? 1
      predecessor.servingSince = Date.now()
      this.current = predecessor
      this.options.log.error({ supervisor: 'serves-again', workerPid: worker.pid, resumedPid: predecessor.pid, generation: predecessor.generation, reason },
        `supervisor: ${reason}; generation ${predecessor.generation} (pid ${predecessor.pid}) serves again`)
      this.options.status.resumed(predecessor.generation, reason)
      return
    }
    this.current = undefined
    this.restart.crashedAfter(worker.servingSince === undefined ? undefined : Date.now() - worker.servingSince)
    // While a reload is starting a successor, that successor takes over; otherwise restart.
    if (!this.gate.busy) this.scheduleRestart()
  }

  private scheduleRestart (): void {
    if (this.stopping !== undefined) return
    const scheduled = this.restart.schedule(() => {
      void this.launch('restart').then((result) => {
        if (!result.ok && this.current === undefined) this.scheduleRestart()
      })
    })
    if (scheduled !== undefined) {
      this.options.log.warn({ supervisor: 'restart-scheduled', delayMs: scheduled.delay, attempt: scheduled.attempt },
        `supervisor: restarting the worker in ${scheduled.delay} ms (attempt ${scheduled.attempt})`)
    }
  }

  private async runShutdown (signal: NodeJS.Signals): Promise<number> {
    this.options.log.info({ supervisor: 'stopping', signal }, `supervisor: ${signal} received; stopping every worker gracefully`)
    this.options.status.stopping(process.pid)
    this.restart.cancel()
    this.starting?.cancel('cancelled: the supervisor is stopping')
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

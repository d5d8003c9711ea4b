// The stable-PID supervisor: keeps a copy of every listening socket (from systemd or from the first
// worker), runs the app as worker generations, reloads by starting generation N+1 with the sockets
// and telling N to drain, restarts a crashed worker with backoff, and forwards shutdown. It never
// accepts a connection itself.
import type { ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { hotReloadError } from '../errors'
import { handoffEnv, type InheritedSocket } from '../handoff-env'
import { toWire, unwrap, wrap, type ChildMessage } from '../ipc'
import type { Socket } from 'node:net'
import { fdNameToAddress, formatAddress, type ListenerAddress } from '../listener-address'
import { handleOfHeldFd } from '../node-internals'
import { send, startSuccessor, type StartedSuccessor } from '../successor'
import type { HotReloadError, ReloadResult } from '../types'

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
  notify?: (state: Record<string, string>) => void
}

type WorkerState = 'starting' | 'serving' | 'draining'

interface Worker {
  generation: number
  pid: number
  child: ChildProcess
  state: WorkerState
  startedAt: number
  servingSince?: number
  /** Told to end its drain now (too many generations draining). */
  cut?: boolean
  /** Serving, on probation: the generation it took over from, which waits to be retired or resumed. */
  predecessor?: Worker
  probationTimer?: NodeJS.Timeout
}

interface HeldSocket {
  address: ListenerAddress
  fd: number
  /** The handle a worker sent up: held so that the fd stays open. */
  handle?: unknown
}

export interface SupervisorStatus {
  pid: number
  state: 'starting' | 'serving' | 'reloading' | 'restarting' | 'stopping'
  generation: number
  uptimeMs: number
  sockets: string[]
  workers: Array<{ generation: number, pid: number, state: WorkerState, uptimeMs: number }>
  lastReload?: WireResult
  restarts: number
}

type WireResult = ReturnType<typeof toWire>

export class Supervisor extends EventEmitter {
  private readonly sockets: HeldSocket[]
  private readonly workers = new Map<number, Worker>()
  private current: Worker | undefined
  private generation = 0
  private reloading: Promise<ReloadResult> | undefined
  private starting: StartedSuccessor | undefined
  private lastReload: ReloadResult | undefined
  private stopping: Promise<number> | undefined
  private restartTimer: NodeJS.Timeout | undefined
  private restartAttempt = 0
  private restarts = 0
  private lastExitCode = 0
  private readonly startedAt = Date.now()

  constructor (private readonly options: SupervisorOptions) {
    super()
    this.sockets = options.activated.map((socket) => ({ address: socket.address, fd: socket.fd }))
  }

  get servingPid (): number | undefined {
    return this.current?.pid
  }

  /** Starts the first generation. Resolves once one serves (restarting with backoff until then). */
  async start (): Promise<void> {
    const result = await this.launch('start')
    if (!result.ok) this.scheduleRestart()
  }

  status (): SupervisorStatus {
    const now = Date.now()
    const state = this.stopping !== undefined
      ? 'stopping'
      : this.reloading !== undefined ? 'reloading' : this.current !== undefined ? 'serving' : this.restartTimer !== undefined ? 'restarting' : 'starting'
    return {
      pid: process.pid,
      state,
      generation: this.current?.generation ?? 0,
      uptimeMs: now - this.startedAt,
      sockets: this.sockets.map((socket) => formatAddress(socket.address)),
      workers: [...this.workers.values()].map((w) => ({ generation: w.generation, pid: w.pid, state: w.state, uptimeMs: now - w.startedAt })),
      lastReload: this.lastReload === undefined ? undefined : toWire(this.lastReload),
      restarts: this.restarts
    }
  }

  /** Starts generation N+1 with the sockets; N drains once N+1 is ready. A failure leaves N serving. */
  reload (): Promise<ReloadResult> {
    if (this.reloading !== undefined) {
      this.options.log.info('supervisor: a reload is already running; this request joins it')
      return this.reloading
    }
    if (this.stopping !== undefined || this.current === undefined || this.current.state !== 'serving') {
      const why = this.stopping !== undefined ? 'the supervisor is stopping' : 'no worker is serving yet'
      return Promise.resolve(this.failure(Date.now(), undefined, hotReloadError('HOT_RELOAD_NOT_SERVING', `reload ignored: ${why}`)))
    }
    this.reloading = this.launch('reload').finally(() => { this.reloading = undefined })
    return this.reloading
  }

  /** SIGTERM/SIGINT: every worker drains and exits; resolves with the exit code to use. */
  shutdown (signal: NodeJS.Signals): Promise<number> {
    if (this.stopping === undefined) this.stopping = this.runShutdown(signal)
    return this.stopping
  }

  private failure (startedAt: number, successorPid: number | undefined, error: HotReloadError): ReloadResult {
    return {
      ok: false,
      generation: this.current?.generation ?? 0,
      pid: this.current?.pid ?? 0,
      durationMs: Date.now() - startedAt,
      successorPid,
      error
    }
  }

  /** Spawns the next generation and, once it is ready, makes it the serving one. */
  private async launch (why: 'start' | 'reload' | 'restart'): Promise<ReloadResult> {
    const startedAt = Date.now()
    const next = this.generation + 1
    if (why === 'reload') this.options.notify?.({ RELOADING: '1', MONOTONIC_USEC: monotonicUsec(), STATUS: `reloading into generation ${next}` })
    const successor = startSuccessor({
      execPath: this.options.command[0],
      args: this.options.command.slice(1),
      cwd: this.options.cwd,
      env: {
        ...this.options.env,
        NOTIFY_SOCKET: undefined,
        ...handoffEnv(this.sockets.map((s) => s.address), next, process.pid, true)
      },
      fds: this.sockets.map((s) => s.fd)
    }, { readyTimeout: this.options.readyTimeout, abortGrace: this.options.drainTimeout + 1_000, supervised: true })
    this.starting = successor
    const worker = successor.child === undefined || successor.pid === undefined
      ? undefined
      : this.track(successor.child, successor.pid, next)
    this.options.log.info({ generation: next, workerPid: successor.pid, sockets: this.sockets.map((s) => formatAddress(s.address)) },
      `supervisor: ${why}: starting generation ${next} (pid ${successor.pid ?? 'none'})`)
    const outcome = await successor.outcome
    this.starting = undefined
    let result: ReloadResult
    if (!outcome.ok) {
      if (worker !== undefined) this.workers.delete(worker.pid)
      result = this.failure(startedAt, outcome.pid, outcome.error)
      this.options.log.error({ err: outcome.error, workerPid: outcome.pid },
        `supervisor: ${why} failed${this.current ? `, generation ${this.current.generation} keeps serving` : ''}: ${outcome.error.message}`)
      if (why === 'reload') this.options.notify?.({ READY: '1', STATUS: `reload failed: ${outcome.error.message}` })
    } else if (this.stopping !== undefined) {
      await outcome.abort()
      result = this.failure(startedAt, outcome.pid, hotReloadError('HOT_RELOAD_NOT_SERVING', 'cancelled: the supervisor is stopping'))
    } else {
      outcome.commit()
      const previous = this.current
      const serving = worker as Worker
      serving.state = 'serving'
      serving.servingSince = Date.now()
      this.current = serving
      this.generation = next
      result = { ok: true, generation: next, pid: serving.pid, durationMs: Date.now() - startedAt, successorPid: serving.pid }
      this.options.log.info({ generation: next, workerPid: serving.pid, durationMs: result.durationMs },
        `supervisor: generation ${next} (pid ${serving.pid}) is serving after ${result.durationMs} ms`)
      this.endProbations()
      if (previous !== undefined && this.workers.has(previous.pid)) {
        previous.state = 'draining'
        const probation = this.options.probation > 0
        send(previous.child, { type: 'drain', probation })
        if (probation) {
          serving.predecessor = previous
          serving.probationTimer = setTimeout(() => this.endProbation(serving), this.options.probation).unref()
        }
      }
      this.limitDraining()
      this.options.notify?.({ READY: '1', STATUS: `serving generation ${next}` })
    }
    if (why === 'reload') this.lastReload = result
    this.emit(result.ok ? 'serving' : 'failed', result)
    return result
  }

  /** The serving generation proved itself: its predecessor may finish. */
  private endProbation (worker: Worker): void {
    clearTimeout(worker.probationTimer)
    const predecessor = worker.predecessor
    worker.predecessor = undefined
    if (predecessor !== undefined && this.workers.has(predecessor.pid)) send(predecessor.child, { type: 'retire' })
  }

  /** A new generation serves: any probation still running is over (there is no going back two steps). */
  private endProbations (): void {
    for (const worker of this.workers.values()) if (worker.predecessor !== undefined) this.endProbation(worker)
  }

  /**
   * The serving generation died within its probation: its predecessor gets copies of the sockets
   * and serves again. False when there is no predecessor able to.
   */
  private resumePredecessor (worker: Worker, how: string): boolean {
    clearTimeout(worker.probationTimer)
    const predecessor = worker.predecessor
    worker.predecessor = undefined
    if (predecessor === undefined) return false
    // Whatever happens next, the predecessor must not wait for a word that never comes.
    const retire = (): false => {
      if (this.workers.has(predecessor.pid)) send(predecessor.child, { type: 'retire' })
      return false
    }
    if (predecessor.cut === true || !this.workers.has(predecessor.pid) || !predecessor.child.connected) return retire()
    const reason = `generation ${worker.generation} (pid ${worker.pid}) exited with ${how} ${Date.now() - (worker.servingSince ?? worker.startedAt)} ms after it took over`
    try {
      for (const socket of this.sockets) socket.handle ??= handleOfHeldFd(socket.fd)
    } catch (err) {
      // A Node whose internals we do not know: restart instead, as without a probation.
      this.options.log.error({ err }, 'supervisor: cannot hand the sockets back to the previous generation')
      return retire()
    }
    for (const socket of this.sockets) {
      predecessor.child.send(wrap({ type: 'listener', address: formatAddress(socket.address) }), socket.handle as Socket)
    }
    send(predecessor.child, { type: 'resume', successorPid: worker.pid, reason })
    predecessor.state = 'serving'
    predecessor.servingSince = Date.now()
    this.current = predecessor
    this.options.log.error({ workerPid: worker.pid, resumedPid: predecessor.pid },
      `supervisor: ${reason}; generation ${predecessor.generation} (pid ${predecessor.pid}) serves again`)
    this.options.notify?.({ READY: '1', STATUS: `serving generation ${predecessor.generation} again: ${reason}` })
    return true
  }

  /** Like HAProxy's mworker-max-reloads: the oldest draining generations beyond the limit end now. */
  private limitDraining (): void {
    const draining = [...this.workers.values()].filter((w) => w.state === 'draining').sort((a, b) => a.generation - b.generation)
    for (const worker of draining.slice(0, Math.max(0, draining.length - this.options.maxDraining))) {
      if (worker.cut === true) continue
      worker.cut = true
      this.options.log.warn({ workerPid: worker.pid },
        `supervisor: ${draining.length} generations draining, more than --max-draining (${this.options.maxDraining}); generation ${worker.generation} (pid ${worker.pid}) cuts what it still has open`)
      send(worker.child, { type: 'cut' })
    }
  }

  private track (child: ChildProcess, pid: number, generation: number): Worker {
    const worker: Worker = { generation, pid, child, state: 'starting', startedAt: Date.now() }
    this.workers.set(pid, worker)
    child.on('message', (raw: unknown, handle: unknown) => this.onWorkerMessage(worker, unwrap(raw) as ChildMessage | undefined, handle))
    child.on('exit', (code, signal) => this.onWorkerExit(worker, code, signal))
    child.on('error', (err) => this.options.log.warn({ err, workerPid: pid }, 'supervisor: worker channel error'))
    return worker
  }

  private onWorkerMessage (worker: Worker, message: ChildMessage | undefined, handle: unknown): void {
    if (message === undefined) return
    if (message.type === 'listener') {
      const address = fdNameToAddress(encodeURIComponent(message.address))
      const fd = (handle as { fd?: unknown } | undefined)?.fd
      if (address === null || typeof fd !== 'number') {
        this.options.log.warn({ workerPid: worker.pid }, `supervisor: ignored a listener message without a usable socket (${message.address})`)
        return
      }
      if (this.sockets.some((s) => formatAddress(s.address) === formatAddress(address))) return
      this.sockets.push({ address, fd, handle })
      this.options.log.info({ fd }, `supervisor: holding listening socket ${message.address} for later generations`)
    } else if (message.type === 'connection') {
      // A draining worker hands an idle keep-alive connection to the serving one, through us.
      const target = this.current
      const release = (): void => { (handle as { close?: () => void } | undefined)?.close?.() }
      if (target === undefined || target === worker || !target.child.connected || typeof handle !== 'object' || handle === null) return release()
      target.child.send(wrap({ type: 'connection', listener: message.listener }), handle as Socket, release)
    } else if (message.type === 'stopping') {
      // Stopped on purpose (a signal sent to the worker itself): its exit is not a failed release.
      if (worker.predecessor !== undefined) this.endProbation(worker)
    } else if (message.type === 'reload-request') {
      void this.reload().then((result) => send(worker.child, { type: 'reload-result', id: message.id, result: toWire(result) }))
    }
  }

  private onWorkerExit (worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(worker.pid)
    const how = signal === null ? `code ${code}` : `signal ${signal}`
    if (worker === this.current) this.lastExitCode = code ?? 1
    if (worker.state === 'draining' || this.stopping !== undefined) {
      this.options.log.info({ workerPid: worker.pid }, `supervisor: generation ${worker.generation} (pid ${worker.pid}) exited with ${how}`)
      if (worker === this.current) this.current = undefined
      this.emit('worker-exit', worker.pid)
      return
    }
    if (worker.state === 'starting') return // the launch that started it reports the failure
    this.options.log.error({ workerPid: worker.pid, code, signal }, `supervisor: generation ${worker.generation} (pid ${worker.pid}) crashed with ${how}`)
    if (worker === this.current && this.resumePredecessor(worker, how)) {
      this.emit('worker-exit', worker.pid)
      return
    }
    if (worker === this.current) {
      this.current = undefined
      if (worker.servingSince !== undefined && Date.now() - worker.servingSince > this.options.restartMaxDelay) this.restartAttempt = 0
      // While a reload is starting a successor, that successor takes over; otherwise restart.
      if (this.reloading === undefined) this.scheduleRestart()
    }
    this.emit('worker-exit', worker.pid)
  }

  /** The sockets stay open meanwhile: clients wait in the accept queue instead of being refused. */
  private scheduleRestart (): void {
    if (this.stopping !== undefined || this.restartTimer !== undefined) return
    const delay = Math.min(this.options.restartDelay * 2 ** this.restartAttempt, this.options.restartMaxDelay)
    this.restartAttempt++
    this.options.log.warn(`supervisor: restarting the worker in ${delay} ms (attempt ${this.restartAttempt})`)
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined
      this.restarts++
      void this.launch('restart').then((result) => {
        if (result.ok) return
        if (this.current === undefined) this.scheduleRestart()
      })
    }, delay)
  }

  private async runShutdown (signal: NodeJS.Signals): Promise<number> {
    this.options.log.info(`supervisor: ${signal} received; stopping every worker gracefully`)
    this.options.notify?.({ STOPPING: '1' })
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer)
    this.restartTimer = undefined
    this.starting?.cancel('cancelled: the supervisor is stopping')
    await this.reloading?.catch(() => {})
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
      this.options.log.error(`supervisor: generation ${worker.generation} (pid ${worker.pid}) did not stop in time; killing it`)
      try { process.kill(worker.pid, 'SIGKILL') } catch {}
      this.lastExitCode = 1
    }
    return this.lastExitCode
  }
}

function monotonicUsec (): string {
  return String(process.hrtime.bigint() / 1000n)
}

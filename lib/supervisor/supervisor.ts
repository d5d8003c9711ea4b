// The stable-PID supervisor: keeps a copy of every listening socket (from systemd or from the first
// worker), runs the app as worker generations of `workers` processes each (every worker accepts on
// the same inherited sockets), reloads by starting all of generation N+1 with the sockets and, once
// every one is ready, telling all of N to drain; restarts a crashed worker in its slot with backoff
// (slot-keeper.ts; another worker covers the slot meanwhile, empty-slots.ts), spreads keep-alive connections
// (balance.ts), and forwards shutdown. It never accepts a connection itself. Starting workers is lib/reload.ts.
// Who owns what: the workers, cohorts, generation number and instance count are Cohorts'
// (cohorts.ts); the held sockets HeldSockets'; probations Probations'; the per-slot restarts and
// their backoff SlotKeeper's; the reload gate and the reloads waiting for it ReloadRequests' (reload-requests.ts);
// stopping Shutdown's (shutdown.ts); the workers being started, the last reload and the first start
// are this class's. A rolling reload is rolling-reload.ts, a worker's messages worker-messages.ts,
// what follows a worker's exit or its own stop worker-exits.ts, the status snapshot status.ts.
import type { ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { failureFields } from '../errors'
import { ENV } from '../handoff-env'
import { unwrap, type ChildMessage } from '../ipc'
import { runCohort } from '../reload'
import { notServing } from '../reload-result'
import type { StartedSuccessor } from '../successor'
import type { ReloadResult } from '../types'
import { KeepAliveBalance } from './balance'
import { Cohorts } from './cohorts'
import { EmptySlots } from './empty-slots'
import { HeldSockets } from './held-sockets'
import { ReloadNews } from './reload-news'
import { ReloadRequests } from './reload-requests'
import { Probations } from './probation'
import type { SupervisorOptions } from './options'
import { SlotKeeper } from './slot-keeper'
import { rollingReload } from './rolling-reload'
import { Shutdown } from './shutdown'
import { describeStatus, type SupervisorStatus } from './status'
import { onWorkerMessage } from './worker-messages'
import { WorkerExits } from './worker-exits'
import { otherVersion, otherVersionWords, type Cohort, type Worker } from './worker'

export type { SupervisorLogger, SupervisorOptions } from './options'
export type { SupervisorStatus } from './status'

/** Why workers are started: `batch` is one step of a rolling reload (the reload itself is accounted once). */
type Launch = 'start' | 'reload' | 'restart' | 'batch'

export class Supervisor extends EventEmitter {
  private readonly cohorts: Cohorts
  private readonly requests: ReloadRequests
  /** Every slot of the serving generation filled: crashes, restarts (slot-keeper.ts). */
  private readonly keeper: SlotKeeper
  private readonly probations: Probations
  private readonly slots: number[]
  private starting: StartedSuccessor[] = []
  private lastReload: ReloadResult | undefined
  /** The last reload's generation crashed within its probation, and the one before serves again (why). */
  private rolledBack: string | undefined
  private readonly stopping: Shutdown
  /** The reload running: what its serving workers are told of it. */
  private news: ReloadNews | undefined
  /** Workers that end, or stop by themselves (worker-exits.ts). */
  private readonly exits: WorkerExits
  private readonly startedAt = Date.now()
  /** The first generation's start, while it runs: a reload asked meanwhile waits for it. */
  private firstStart: Promise<void> | undefined
  private readonly held: HeldSockets
  /** Empty slots' sockets, accepted on by another worker meanwhile. */
  private readonly empty: EmptySlots
  /** Keep-alive connections spread evenly over the serving workers. */
  private readonly balance: KeepAliveBalance

  constructor (private readonly options: SupervisorOptions) {
    super()
    this.slots = Array.from({ length: options.workers ?? 1 }, (_, slot) => slot)
    this.cohorts = new Cohorts(options.maxDraining, options.log)
    this.probations = new Probations(options.probation, options.drainTimeout, (worker) => this.cohorts.workers.get(worker.pid) === worker, options.log)
    this.held = new HeldSockets(options.activated, this.slots.length, process.versions.node)
    this.empty = new EmptySlots(this.slots, this.held, this.cohorts, options.log)
    this.balance = new KeepAliveBalance(this.cohorts, this.slots.length)
    this.keeper = new SlotKeeper({
      options, slots: this.slots, cohorts: this.cohorts, probations: this.probations, held: this.held,
      stopping: () => this.stopping.active,
      reloading: () => this.requests.busy,
      launch: (why, slots, into, generation) => this.launch(why, slots, into, generation),
      changed: () => this.changed(),
      rolledBack: (cohort, reason) => {
        if (this.lastReload?.generation !== cohort.generation) return
        this.rolledBack = reason
        const again = this.cohorts.current
        if (again !== undefined) options.status.recordRollback(reason, { generation: again.generation, pid: this.servingPid ?? 0 })
      }
    })
    this.requests = new ReloadRequests({
      log: options.log,
      // Until every slot has had its first start: a reload while the other slots still bind their
      // own sockets would bind them again (a socket no worker accepts on).
      firstStart: () => this.stopping.active ? undefined : this.firstStart,
      run: () => this.runReload()
    })
    this.exits = new WorkerExits({
      log: options.log, cohorts: this.cohorts, keeper: this.keeper,
      stopping: () => this.stopping.active,
      reloading: () => this.requests.busy,
      changed: () => this.changed()
    })
    this.stopping = new Shutdown({
      log: options.log, status: options.status, drainTimeout: options.drainTimeout, workers: this.cohorts.workers, events: this,
      quiesce: async () => {
        this.keeper.restarts.cancelAll()
        for (const successor of this.starting) successor.cancel('cancelled: the supervisor is stopping')
        await this.requests.current?.catch(() => {})
      },
      closeSockets: () => this.held.closeAll(),
      exitCode: () => this.exits.lastExitCode
    })
    if (this.held.sharedBecause !== undefined) {
      options.log.warn({ supervisor: 'shared-socket', reason: this.held.sharedBecause },
        `supervisor: the ${this.slots.length} workers share one listening socket (${this.held.sharedBecause}); under keep-alive load one worker may take most connections`)
    }
  }

  /** The serving worker of the lowest slot. */
  get servingPid (): number | undefined {
    return this.cohorts.servingPid
  }

  /**
   * Starts the first generation. Resolves once it serves, or once it failed: the caller stops then
   * (a release that cannot start is not a crash to retry), so no restart is scheduled.
   */
  async start (): Promise<void> {
    this.firstStart = (async () => {
      // Nothing to inherit yet: one worker binds, and the supervisor keeps its sockets for the rest.
      // Not sooner than it serves: it binds at the end of its boot (starting the rest at the bind
      // saves only its readiness check), and an app's port 0 is known only once it bound.
      const first = this.held.all().length === 0 && this.slots.length > 1 ? [0] : this.slots
      const result = await this.launch('start', first)
      if (!result.ok) return
      if (first.length < this.slots.length) {
        await this.keeper.fill('start')
        // READY=1 once every slot has had its start (a slot that failed restarts with backoff).
        if (this.cohorts.current !== undefined) this.options.status.serving(this.cohorts.current.generation)
      }
    })()
    try {
      await this.firstStart
    } finally {
      this.firstStart = undefined
    }
  }

  status (): SupervisorStatus {
    return describeStatus({
      stopping: this.stopping.active, firstStart: this.firstStart !== undefined, reloading: this.requests.busy, cohorts: this.cohorts, restarts: this.keeper.restarts,
      slots: this.slots.length, probationMs: this.options.probation, startedAt: this.startedAt, sockets: this.held.all(), lastReload: this.lastReload,
      rolledBack: this.rolledBack,
      connectionsOf: (pid) => this.balance.connectionsOf(pid)
    })
  }

  /** Starts all of generation N+1 with the sockets; N drains once every new worker is ready. A failure leaves N serving. */
  reload (): Promise<ReloadResult> {
    return this.requests.ask()
  }

  /** A reload now, or why none can run. */
  private runReload (): { now: () => Promise<ReloadResult> } | { refused: ReloadResult } {
    const serving = this.cohorts.servingWorkers()
    if (this.stopping.active || serving.length === 0) {
      const why = this.stopping.active ? 'the supervisor is stopping' : 'no worker is serving yet'
      return { refused: notServing(serving[0]?.pid ?? 0, `reload ignored: ${why}`, this.cohorts.current?.generation ?? 0) }
    }
    const batch = this.options.reloadBatch ?? this.slots.length
    return {
      now: async () => {
        this.news = new ReloadNews(serving, this.cohorts.generation + 1)
        try {
          return await (batch < this.slots.length ? this.rollingReload(batch) : this.launch('reload', this.slots))
        } finally {
          this.news = undefined
          this.keeper.afterReload()
        }
      }
    }
  }

  /** --reload-batch K (rolling-reload.ts); the result is recorded here, like a reload's at once. */
  private async rollingReload (batch: number): Promise<ReloadResult> {
    const { options } = this
    const result = await rollingReload({
      log: options.log, status: options.status, slots: this.slots, cohorts: this.cohorts, probations: this.probations, held: this.held,
      launch: (slots, cohort) => this.launch('batch', slots, cohort),
      fill: () => { void this.keeper.fill() }
    }, batch)
    this.lastReload = result
    this.rolledBack = undefined
    options.status.recordReload(result, process.pid, options.probation)
    this.news?.finished(result)
    this.changed()
    this.emit(result.ok ? 'serving' : 'failed', result)
    return result
  }

  /**
   * SIGTERM/SIGINT: every worker drains and exits; resolves with the exit code to use. A second
   * signal meanwhile kills every worker. `signal` undefined when none came (`why`: the first
   * generation did not start).
   */
  shutdown (signal: NodeJS.Signals | undefined, why = `${signal ?? 'stop'} received`): Promise<number> {
    return this.stopping.begin(signal, why)
  }

  /**
   * Starts workers for `slots` of a new generation; once all are ready they are its cohort and it
   * serves (the previous one drains). A 'restart' of some slots while others serve joins them instead.
   */
  private async launch (why: Launch, slots: number[], into?: Cohort, generation?: number): Promise<ReloadResult> {
    const next = into?.generation ?? generation ?? this.cohorts.generation + 1
    const { options } = this
    if (why === 'reload') options.status.reloading(next)
    const started = new Map<number, Worker>()
    const successors: StartedSuccessor[] = []
    // Our --drain-timeout bounds the workers' drains (lib/options.ts limitDrain).
    const command = { execPath: options.command[0], args: options.command.slice(1), cwd: options.cwd, env: { ...options.env, NOTIFY_SOCKET: undefined, [ENV.drainTimeout]: String(options.drainTimeout) } }
    const outcome = await runCohort(next, slots, {
      serving: () => ({ generation: this.cohorts.current?.generation ?? 0, pid: this.servingPid ?? 0 }),
      plan: (slot) => this.held.planFor(slot, command, next, this.cohorts.instances),
      // Only a reload's workers boot at a lower priority and in waves: they boot beside a generation that serves.
      timings: { readyTimeout: options.readyTimeout, abortGrace: options.drainTimeout + 1_000, supervised: true, bootNice: why === 'reload' ? options.bootNice : 0 },
      concurrency: why === 'reload' ? options.bootConcurrency : undefined,
      cancelled: () => this.cancelReason(into),
      started: (successor, plan, slot) => {
        successors.push(successor)
        this.starting.push(successor)
        if (successor.child !== undefined && successor.pid !== undefined) started.set(slot, this.track(successor.child, successor.pid, next, slot))
        if (why === 'reload' || why === 'batch') this.news?.started(slot, next, successor.pid)
        options.log.info({ supervisor: 'generation-starting', trigger: why, generation: next, slot, workerPid: successor.pid, sockets: plan.addresses },
          `supervisor: ${why}: starting generation ${next}${this.slots.length > 1 ? ` slot ${slot}` : ''} (pid ${successor.pid ?? 'none'})`)
      }
    })
    this.starting = this.starting.filter((successor) => !successors.includes(successor))
    const result = outcome.result
    // Before the serving workers' drain orders (a rolling reload says so once, at its end).
    if (why === 'reload') this.news?.finished(result)
    if (outcome.members === undefined) {
      for (const worker of started.values()) this.cohorts.forget(worker)
      // A restart that was the last hope of an empty serving generation: none serves now.
      if (into !== undefined) this.cohorts.vacate(into)
      const fields = { trigger: why, generation: next, servingGeneration: this.cohorts.current?.generation, workerPid: result.successorPid }
      if (result.error?.code === 'HOT_RELOAD_NOT_SERVING' && this.cancelReason(into) !== undefined) {
        // Called off on purpose (we stop, or a reload overtook a restart): no failure, no stack.
        options.log.info({ supervisor: 'generation-cancelled', ...fields, reason: result.error.message }, `supervisor: ${why} called off: ${result.error.message}`)
      } else {
        options.log.error({ supervisor: 'generation-failed', ...fields, error: failureFields(result.error) },
          `supervisor: ${why} failed${this.cohorts.current ? `, generation ${this.cohorts.current.generation} keeps serving` : ''}: ${result.error?.message}`)
      }
      if (why === 'reload') options.status.reloadFailed(result.error?.message ?? 'unknown')
    } else if (into !== undefined) {
      for (const worker of started.values()) this.cohorts.join(into, worker)
    } else {
      const cohort: Cohort = { generation: next, workers: new Map() }
      for (const worker of started.values()) this.cohorts.join(cohort, worker)
      // The first start's slot 0 alone is not the whole service yet: start() says READY after the rest.
      await this.serve(cohort, result, why !== 'start' || slots.length === this.slots.length)
    }
    if (why === 'reload') {
      this.lastReload = result
      this.rolledBack = undefined
      options.status.recordReload(result, process.pid, options.probation)
    }
    this.changed()
    this.emit(result.ok ? 'serving' : 'failed', result)
    return result
  }

  /**
   * Why workers being started must not be committed: we stop, or they were to join a generation
   * that no longer serves (a restart that a reload overtook: joined, they would serve the old code
   * beside the new generation and never be told to drain).
   */
  private cancelReason (into: Cohort | undefined): string | undefined {
    if (this.stopping.active) return 'cancelled: the supervisor is stopping'
    if (into !== undefined && into !== this.cohorts.current && into !== this.cohorts.building) return `cancelled: generation ${into.generation} no longer serves`
    return undefined
  }

  /** A new generation is ready and committed: it serves, the previous one drains. */
  private async serve (cohort: Cohort, { durationMs, bootMs }: ReloadResult, ready: boolean): Promise<void> {
    const previous = this.cohorts.commit(cohort)
    this.probations.endAll(this.cohorts.all())
    if (previous !== undefined && previous.workers.size > 0) this.probations.begin(cohort, previous)
    this.cohorts.limitDraining()
    // Serving means that a new connection reaches the new code: not before the old workers heard their drain order.
    if (previous !== undefined) await this.probations.stoppedAccepting(previous.workers.values())
    const pids = [...cohort.workers.values()].map((w) => w.pid)
    const other = otherVersion(cohort)
    this.options.log.info({ supervisor: 'generation-serving', generation: cohort.generation, workerPid: pids[0], workerPids: pids, durationMs, bootMs, ...other },
      `supervisor: generation ${cohort.generation} (pid ${pids.join(', ')}) is serving after ${durationMs} ms${bootMs === undefined ? '' : ` (its own boot: ${bootMs} ms)`}${otherVersionWords(other)}`)
    // Unless a probation's failure gave the service back to the predecessor meanwhile.
    if (ready && this.cohorts.current === cohort) this.options.status.serving(cohort.generation)
  }

  /** Who serves changed: empty slots are covered, new serving workers join the balance. */
  private changed (): void {
    this.empty.update()
    this.balance.update()
  }

  private track (child: ChildProcess, pid: number, generation: number, slot: number): Worker {
    const worker: Worker = { generation, slot, pid, child, state: 'starting', startedAt: Date.now() }
    this.cohorts.add(worker)
    const host = {
      log: this.options.log, cohorts: this.cohorts, held: this.held, probations: this.probations, balance: this.balance,
      reload: () => this.reload(), stopped: (w: Worker) => this.exits.stopped(w)
    }
    child.on('message', (raw: unknown, handle: unknown) => onWorkerMessage(host, worker, unwrap(raw) as ChildMessage | undefined, handle))
    child.on('exit', (code, signal) => {
      this.probations.acceptingStopped(worker)
      this.exits.exited(worker, code, signal)
      this.balance.forget(worker.pid)
      if (!this.stopping.active) this.changed()
      this.emit('worker-exit', worker.pid)
    })
    child.on('error', (err) => this.options.log.warn({ supervisor: 'worker-channel-error', err, workerPid: pid }, 'supervisor: worker channel error'))
    return worker
  }
}

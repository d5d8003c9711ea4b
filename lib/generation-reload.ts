// A generation's reloads: one at a time for the whole process (ReloadGate), whichever instance or
// signal asked; the run spawns the successor with every open instance's sockets (lib/reload.ts) and
// commits it, or keeps serving. Apart from Generation because it owns what only a reload touches:
// the gate and the successor being started. The generation's state changes only through its Lifecycle.
import type { GenerationContext } from './generation'
import { drainBoundMs, type Handover } from './handover'
import type { Instance } from './instance'
import type { Lifecycle } from './lifecycle'
import { failureFields } from './errors'
import { runReload, spawnPlan, successorCommand } from './reload'
import { notServing, ReloadGate, unsupported } from './reload-result'
import type { ServiceStatus } from './service-status'
import type { StartedSuccessor } from './successor'
import { socketsForSuccessor } from './takeover'
import type { ReloadResult } from './types'
import { generationField } from './log-fields'

/** What a reload reads of its generation (Generation owns all of it). */
export interface ReloadHost {
  context: GenerationContext
  generation: number
  pid: number
  lifecycle: Lifecycle
  status: ServiceStatus
  handover: Handover
  /** The open instances: their sockets go to the successor. */
  instances: () => Instance[]
}

export class GenerationReloads {
  private readonly gate = new ReloadGate()
  /** A successor being started, until it is committed or gone. */
  private starting: StartedSuccessor | undefined
  /** The newest generation this one committed (a successor that died in its probation included). */
  private committedUpTo = 0
  /** A reload signal came before this generation served: one reload runs once it serves, however many came. */
  private deferred = false
  /** The successor that took over from this generation (a refused reload names it: it serves afterwards). */
  private successor: { generation: number, pid: number } | undefined

  constructor (private readonly host: ReloadHost) {}

  /** A reload signal was received. Before this generation serves it is remembered, as the supervisor does with its first generation. */
  signal (): void {
    const { log } = this.host.context
    if (!this.host.lifecycle.beforeServing) {
      void this.reload()
      return
    }
    if (this.deferred) {
      log.info({ hotReload: 'reload-coalesced', deferred: true }, 'hot-reload: a reload already waits for this generation to serve; this signal joins it')
      return
    }
    this.deferred = true
    log.info({ hotReload: 'reload-deferred', ...generationField(log, this.host.generation) },
      `hot-reload: generation ${this.host.generation} does not serve yet; the reload runs once it serves`)
  }

  /** True while a signal's reload waits for this generation to serve. */
  get waiting (): boolean {
    return this.deferred
  }

  /** This generation serves now (it took over, or its predecessor committed it): a deferred reload runs. */
  served (): void {
    this.successor = undefined
    if (!this.deferred) return
    this.deferred = false
    // After the rest of the takeover (the 'serving' line, the ready report): the reload follows it.
    setImmediate(() => { void this.reload() })
  }

  /** The reload running, if any. */
  get current (): Promise<ReloadResult> | undefined {
    return this.gate.current
  }

  /** Gives up the successor being started and a deferred reload, if any (shutting down, or the app closes). */
  cancel (reason: string): void {
    this.starting?.cancel(reason)
    if (!this.deferred) return
    this.deferred = false
    this.host.context.log.warn({ hotReload: 'reload-ignored', reason, deferred: true }, `hot-reload: the deferred reload is dropped: ${reason}`)
  }

  /** One reload for the whole process, whichever instance asked: requests meanwhile join it. */
  reload (): Promise<ReloadResult> {
    const { log, parent, mode } = this.host.context
    if (mode.reloadUnsupported !== undefined) {
      log.warn({ hotReload: 'reload-ignored', reason: mode.reloadUnsupported }, `hot-reload: reload ignored: ${mode.reloadUnsupported}`)
      return Promise.resolve(unsupported(this.host.pid, `reload ignored: ${mode.reloadUnsupported}`, this.host.generation))
    }
    // Reloading: a reload the supervisor runs (it joins it).
    if ((this.host.lifecycle.state === 'serving' || this.host.lifecycle.state === 'reloading') && this.host.lifecycle.confirmed) {
      const delegated = this.host.context.mode.delegatedReload(parent)
      if (delegated !== undefined) {
        log.info({ hotReload: 'reload-delegated' }, 'hot-reload: asking the supervisor for a reload')
        return delegated
      }
    }
    if (this.gate.busy) {
      log.info({ hotReload: 'reload-coalesced' }, 'hot-reload: a reload is already running; this request joins it')
      return this.gate.current as Promise<ReloadResult>
    }
    const refusal = this.host.lifecycle.reloadRefusal()
    if (refusal !== null) {
      log.warn({ hotReload: 'reload-ignored', reason: refusal }, `hot-reload: reload ignored: ${refusal}`)
      // A generation that handed over names the one that serves afterwards, as every result does.
      const serving = this.host.lifecycle.leaving ? this.successor : undefined
      return Promise.resolve(notServing(serving?.pid ?? this.host.pid, `reload ignored: ${refusal}`, serving?.generation ?? this.host.generation))
    }
    return this.gate.enter(() => this.run()).result
  }

  private async run (): Promise<ReloadResult> {
    const { log, options, launch, env } = this.host.context
    // After a resume, the successor that died keeps its number (as under the supervisor): logs and
    // /health never show two processes as the same generation.
    const next = Math.max(this.host.generation, this.committedUpTo) + 1
    this.host.lifecycle.to('reloading')
    this.host.status.reloading(next)
    const command = successorCommand(launch, options.successor, env)
    const outcome = await runReload(next, {
      serving: () => ({ generation: this.host.generation, pid: this.host.pid }),
      plan: () => {
        // Every open instance's sockets; a closed instance's are no longer handed on.
        const { sockets, instances } = socketsForSuccessor(this.host.instances().map((instance) => instance.listeners.forSuccessor()))
        return spawnPlan(command, sockets, next, this.host.pid, false, instances)
      },
      timings: { readyTimeout: options.readyTimeout, abortGrace: options.drainTimeout + 1_000, bootNice: options.bootNice, exitWithinMs: drainBoundMs(options.drainTimeout, options.probation) },
      cancelled: () => this.host.lifecycle.stopping ? 'reload cancelled: shutting down' : undefined,
      started: (successor, plan) => {
        this.starting = successor
        log.info({ hotReload: 'reload-started', generation: next, successorPid: successor.pid, sockets: plan.addresses },
          `hot-reload: reload started; successor pid ${successor.pid ?? '(none)'} for generation ${next}`)
        this.host.lifecycle.emit('reloading', { generation: next, successorPid: successor.pid })
      }
    })
    this.starting = undefined
    const result = outcome.result
    this.host.status.recordReload(result, this.host.pid, options.probation)
    if (outcome.channel === undefined) {
      if (this.host.lifecycle.state === 'reloading') this.host.lifecycle.to('serving')
      this.host.status.reloadFailed(result.error?.message ?? 'unknown')
      log.error({ hotReload: 'reload-failed', error: failureFields(result.error), successorPid: result.successorPid, ...generationField(log, this.host.generation) },
        `hot-reload: reload failed, generation ${this.host.generation} keeps serving: ${result.error?.message}`)
      this.host.lifecycle.emit('reloadFailed', result)
      return result
    }
    this.committedUpTo = next
    this.successor = { generation: next, pid: outcome.pid }
    this.host.status.serving(next, outcome.pid)
    log.info({ hotReload: 'successor-ready', generation: next, successorPid: outcome.pid, durationMs: result.durationMs, bootMs: result.bootMs },
      `hot-reload: successor pid ${outcome.pid} ready after ${result.durationMs} ms${result.bootMs === undefined ? '' : ` (its own boot: ${result.bootMs} ms)`}; draining generation ${this.host.generation}`)
    this.host.lifecycle.emit('reloaded', result)
    this.host.handover.afterReload(outcome.channel, outcome.pid, outcome.listenerCopies)
    return result
  }

  /**
   * Supervised: the supervisor began a reload, whoever asked; our successor is spawned. The same
   * state and event as a standalone reload's.
   */
  supervisorReloading (generation: number, successorPid: number | undefined): void {
    if (!this.host.lifecycle.to('reloading')) return
    this.host.lifecycle.emit('reloading', { generation, successorPid })
  }

  /** Supervised: how that reload ended; when it succeeded, the drain order follows. */
  supervisorReloaded (result: ReloadResult): void {
    if (result.ok) {
      this.successor = { generation: result.generation, pid: result.pid }
      this.host.lifecycle.emit('reloaded', result)
      return
    }
    if (this.host.lifecycle.state === 'reloading') this.host.lifecycle.to('serving')
    this.host.lifecycle.emit('reloadFailed', result)
  }
}

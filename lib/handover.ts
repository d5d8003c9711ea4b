// The old generation's side once a successor has taken over (or is about to, on the supervisor's
// word): watch the successor through its probation, drain, then exit, or, should the successor die
// within its probation, take the sockets back and serve again. Also ends a drain early when too
// many generations drain at once. It acts through the Lifecycle, like Generation. Every Fastify
// instance of the process drains together; the generation is drained once all of them are.
import type { FastifyBaseLogger } from 'fastify'
import type { DrainCutCause } from './drain'
import type { Instance } from './instance'
import type { Lifecycle } from './lifecycle'
import type { Mode } from './mode'
import type { ResolvedOptions } from './options'
import type { ParentLink } from './parent-link'
import { Retirement } from './retirement'
import type { ServiceStatus } from './service-status'
import type { ListenerCopy } from './successor'
import type { SuccessorChannel } from './successor-channel'
import type { DrainResult } from './types'
import { generationField } from './log-fields'

export type DrainReason = DrainResult['reason'] | 'abort'

/**
 * After a drain's `drainTimeout`, how long the app's onClose hooks may still run before the process
 * exits anyway (code 1): a hook that never settles must not keep an old generation alive for good.
 * The same bound as a SIGTERM's forced exit.
 */
export const CLOSE_GRACE_MS = 5_000

/** Beyond a generation's own deadlines: its exit itself (the log's last write, lib/log-settle.ts). */
const EXIT_MARGIN_MS = 2_000

/**
 * From the order to drain, the longest a generation takes to exit by itself: its drain, the
 * probation it waits out, its app's onClose hooks, its exit. One still there later is stuck (its
 * event loop never comes back), and whoever started it kills it: the supervisor
 * (supervisor/drain-deadlines.ts), or standalone its successor (predecessor-watch.ts).
 */
export function drainBoundMs (drainTimeout: number, probationMs: number): number {
  return drainTimeout + probationMs + CLOSE_GRACE_MS + EXIT_MARGIN_MS
}

export interface HandoverParts {
  log: FastifyBaseLogger
  /** The process-wide options. */
  options: ResolvedOptions
  generation: number
  pid: number
  mode: Mode
  parent: ParentLink | undefined
  lifecycle: Lifecycle
  /** The open instances, each drained. */
  instances: () => Instance[]
  status: ServiceStatus
  /** Called when this generation serves again. */
  servingAgain: () => void
  /** Resolves once the generation before us is gone (standalone: nobody else would end a stuck one). */
  predecessorGone: () => Promise<void>
}

export class Handover {
  /** The committed successor's channel, until our drain is over (handoffs, news of later drains). */
  private successor: SuccessorChannel | undefined
  /** Watches the successor until its probation is over. */
  private retirement: Retirement | undefined
  private draining: Promise<DrainResult | undefined> | undefined
  /** Supervised: the ramp of the moves the supervisor asked for (its probation), over our own options'. */
  private rampMs: number | undefined
  /** False once the app's close outlived CLOSE_GRACE_MS: the process exits with code 1. */
  private closedInTime = true
  /** When the app's close must be over (performance.now()), once the drain is cut or closes. */
  private closeDeadline: Deadline | undefined

  constructor (private readonly parts: HandoverParts) {}

  /** Standalone: our successor is committed; watch it, drain, exit. */
  afterReload (channel: SuccessorChannel, pid: number, copies: ListenerCopy[]): void {
    const { parent, options } = this.parts
    this.successor = channel
    this.retirement = Retirement.watchChild(channel.child, pid, options.probation, copies)
    // A successor that dies takes the handoffs still queued on its channel with it: they stay here.
    channel.onExit(() => {
      for (const instance of this.parts.instances()) instance.failHandoffs('the successor exited before it took the connection')
    })
    channel.onMessage((message) => {
      if (message.type === 'behind') this.onBehind(message.newer)
      else if (message.type === 'stopping') this.endProbation()
      // Its own drain is over before ours (reloads faster than drains): what we still hold stays here.
      else if (message.type === 'handoffs-end') channel.endHandoffs()
    })
    // We drain now: the generation before us (if it still drains) learns it is one further behind.
    parent?.sendBehind(1)
    this.drainThenExit()
  }

  /** Supervised: a successor serves; with a probation, wait for the supervisor's verdict after the drain. */
  onSupervisorDrain (probation: boolean, rampMs: number | undefined): void {
    this.parts.log.info({ hotReload: 'supervisor-successor', ...generationField(this.parts.log, this.parts.generation) },
      `hot-reload: the supervisor started a successor; draining generation ${this.parts.generation}`)
    if (probation) this.retirement = new Retirement(undefined)
    this.rampMs = rampMs
    this.drainThenExit()
  }

  /** Supervised probation: a copy of a listening socket to serve on again, should the successor die. */
  keepCopy (address: string, handle: object): void {
    const copy = { address, handle: handle as { close: () => void } }
    if (this.retirement === undefined) copy.handle.close()
    else this.retirement.addCopy(copy)
  }

  /** Supervised probation: the successor died; serve again. */
  successorLost (successorPid: number | undefined, reason: string): void {
    if (this.retirement === undefined) return
    // A supervisor of an older release says 0 for "none was spawned".
    this.retirement.successorPid = successorPid !== undefined && successorPid > 0 ? successorPid : undefined
    this.retirement.fail(reason)
  }

  /** No going back: the successor proved itself, moved on, or we stop for good. */
  endProbation (): void {
    this.retirement?.endProbation()
  }

  /** Ends our drain now: the connections still open are cut and counted. */
  cutNow (why: string, cause: DrainCutCause): void {
    if (this.parts.lifecycle.state !== 'draining') return
    // Too many generations drain: this one exits soon, whatever the app's onClose hooks do.
    this.closeDeadline ??= new Deadline()
    this.closeDeadline.bringForward(performance.now() + CLOSE_GRACE_MS)
    this.endProbation()
    const instances = this.parts.instances()
    for (const instance of instances) instance.cutNow(why, cause)
    // Drained already, only the app's onClose hooks still run: the cut shortens their time, and says so.
    if (instances.length === 0) {
      this.parts.log.warn({ hotReload: 'drain-cut', cause, cutConnections: 0 }, `hot-reload: ${why}; the app's onClose hooks get ${CLOSE_GRACE_MS} ms more at most`)
    }
  }

  /** One instance reached its drainTimeout: what it still has open is cut. */
  private cutAtDeadline (instance: Instance): void {
    if (this.parts.lifecycle.state !== 'draining') return
    this.endProbation()
    instance.cutNow(`drainTimeout (${instance.options.drainTimeout} ms) reached`, 'drain-timeout')
  }

  /** `newer` generations after us are draining: our successor has moved on, and we may be one too many. */
  private onBehind (newer: number): void {
    this.endProbation()
    const draining = newer + 1
    const max = this.parts.options.maxDrainingGenerations
    this.parts.parent?.sendBehind(draining)
    if (draining > max) this.cutNow(`${draining} generations are draining, more than maxDrainingGenerations (${max}); this is the oldest`, 'max-draining')
  }

  private drainThenExit (): void {
    void this.drain('reload').then(async (drained) => {
      if (drained === undefined) return
      await this.parts.predecessorGone()
      this.parts.lifecycle.end(this.exitCode)
    })
  }

  /** The exit code once drained: 1 when the app's onClose hooks did not finish in time. */
  get exitCode (): number {
    return this.closedInTime ? 0 : 1
  }

  /** Resolves with the result once closed, or undefined when the generation resumed serving instead. */
  drain (reason: DrainReason): Promise<DrainResult | undefined> {
    this.draining ??= this.runDrain(reason)
    return this.draining
  }

  private async runDrain (reason: DrainReason): Promise<DrainResult | undefined> {
    const { log, options, mode, parent, lifecycle } = this.parts
    const startedAt = performance.now()
    const publicReason = reason === 'reload' ? 'reload' : 'shutdown'
    lifecycle.to('draining')
    lifecycle.emit('draining', { reason: publicReason })
    if (reason === 'shutdown') this.parts.status.stopping(this.parts.pid)
    const instances = this.parts.instances()
    for (const instance of instances) instance.stopAccepting(reason === 'shutdown')
    const outlet = reason === 'reload' && options.connectionHandoff ? mode.outlet(this.successor, parent) : undefined
    const drained = Promise.all(instances.map((instance) => instance.drain(outlet, () => this.cutAtDeadline(instance), publicReason, this.rampMs)))
    const retirement = reason === 'reload' ? this.retirement : undefined
    if (retirement !== undefined) {
      // The successor's probation: should it die before it is over, we serve again.
      const lost = await Promise.race([drained.then(() => retirement.over).then(() => undefined), retirement.lost])
      if (lost !== undefined && !lifecycle.stopping) {
        this.resume(retirement, lost, instances)
        return undefined
      }
      retirement.release()
    } else {
      await drained
    }
    if (reason !== 'abort' && parent !== undefined) {
      // The generation before us may drain longer than we do and still be handing us connections:
      // it stops, and what it sent before it heard that drains here too, before we close.
      await parent.endHandoffs()
      if (instances.some((instance) => instance.drainingConnections > 0)) {
        await Promise.all(instances.map((instance) => instance.drain(outlet, () => this.cutAtDeadline(instance), publicReason, this.rampMs)))
      }
    }
    const result: DrainResult = {
      durationMs: Math.round(performance.now() - startedAt),
      cutConnections: instances.reduce((sum, instance) => sum + instance.cutConnections, 0),
      movedConnections: instances.reduce((sum, instance) => sum + instance.movedConnections, 0),
      reason: publicReason
    }
    log.info({ hotReload: 'drained', ...generationField(log, this.parts.generation), ...result }, `hot-reload: generation ${this.parts.generation} drained after ${result.durationMs} ms`)
    this.closeDeadline ??= new Deadline()
    this.closeDeadline.bringForward(startedAt + options.drainTimeout + CLOSE_GRACE_MS)
    const closeStartedAt = performance.now()
    this.closedInTime = await closeWithin(instances, this.closeDeadline)
    if (!this.closedInTime) {
      log.error({ hotReload: 'close-timeout', ...generationField(log, this.parts.generation), waitedMs: Math.round(performance.now() - closeStartedAt) },
        `hot-reload: the app's onClose hooks did not finish within drainTimeout + ${CLOSE_GRACE_MS} ms (or ${CLOSE_GRACE_MS} ms after a cut); exiting anyway`)
    }
    // Only now: while the app closes, a successor may still say that too many generations drain (a cut).
    this.successor?.release()
    lifecycle.to('closed')
    lifecycle.emit('drained', result)
    return result
  }

  /** Our successor died during its probation: take the sockets back and serve again. */
  private resume (retirement: Retirement, reason: string, instances: Instance[]): void {
    const { log, generation, pid, lifecycle } = this.parts
    for (const instance of instances) instance.stopDrain()
    this.retirement = undefined
    this.successor = undefined
    this.draining = undefined
    const copies = retirement.takeCopies()
    for (const instance of instances) {
      for (const key of instance.listeners.listenAgain(copies)) {
        instance.app.log.error({ hotReload: 'address-dark', address: key }, `hot-reload: no copy of ${key} came back; that address stays dark`)
      }
    }
    for (const copy of copies.values()) copy.close()
    lifecycle.to('serving')
    this.parts.servingAgain()
    this.parts.status.resumed(generation, reason, pid)
    this.parts.status.recordRollback(reason, { generation, pid })
    log.error({ hotReload: 'resumed', successorPid: retirement.successorPid, ...generationField(log, generation), reason },
      `hot-reload: ${reason}; generation ${generation} took its sockets back and serves again`)
    lifecycle.emit('resumed', { generation, ...(retirement.successorPid !== undefined && { successorPid: retirement.successorPid }), reason })
  }
}

/** A moment (performance.now()) that can only be brought forward; `passed` resolves when it comes. */
class Deadline {
  private at = Infinity
  private timer: NodeJS.Timeout | undefined
  private reached: () => void = () => {}
  readonly passed = new Promise<void>((resolve) => { this.reached = resolve })

  bringForward (at: number): void {
    if (at >= this.at) return
    this.at = at
    clearTimeout(this.timer)
    this.timer = setTimeout(this.reached, Math.max(0, at - performance.now()))
  }

  clear (): void {
    clearTimeout(this.timer)
  }
}

/** Closes every instance (the app's onClose hooks run); false when the deadline came first. */
async function closeWithin (instances: Instance[], deadline: Deadline): Promise<boolean> {
  const closed = Promise.all(instances.map(async (instance) => {
    try {
      await instance.app.close()
    } catch (err) {
      instance.app.log.error({ hotReload: 'close-error', err }, 'hot-reload: error while closing')
    }
  })).then(() => true)
  try {
    return await Promise.race([closed, deadline.passed.then(() => false)])
  } finally {
    deadline.clear()
  }
}

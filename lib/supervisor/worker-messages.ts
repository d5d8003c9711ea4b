// What a worker tells the supervisor over its IPC channel: how many instances listen, a socket it
// bound (held for later generations), an idle connection to hand to a serving worker, how many
// connections it holds (the balance), that it no longer accepts (told to drain), that it stops
// on purpose, a reload asked by the app. Each message goes to the module that owns what it changes;
// this module keeps none of its own.
import type { ChildMessage } from '../ipc'
import { toWire } from '../reload-result'
import { send } from '../successor-channel'
import type { ReloadResult } from '../types'
import type { KeepAliveBalance } from './balance'
import type { Cohorts } from './cohorts'
import type { HeldSockets } from './held-sockets'
import type { Probations } from './probation'
import type { SupervisorLogger } from './options'
import type { Worker } from './worker'

export interface MessageHost {
  log: SupervisorLogger
  cohorts: Cohorts
  held: HeldSockets
  probations: Probations
  balance: KeepAliveBalance
  reload: () => Promise<ReloadResult>
  /** A worker said it stops by itself: its slot needs another worker. */
  stopped: (worker: Worker) => void
}

export function onWorkerMessage (host: MessageHost, worker: Worker, message: ChildMessage | undefined, handle: unknown): void {
  if (message === undefined) return
  if (message.type === 'ready' || message.type === 'instances') {
    if (message.type === 'ready') {
      worker.covers = message.covers === true
      worker.acksDrain = message.acksDrain === true
      if (typeof message.version === 'string') worker.version = message.version
    }
    host.cohorts.learned(worker, message.type === 'ready' ? message.instances : message.count)
  } else if (message.type === 'listener') {
    holdListener(host, worker, message.address, handle)
  } else if (message.type === 'connection') {
    const id = message.id
    host.cohorts.route(worker, message.listener, handle, (from, targets) => host.balance.target(from, targets),
      typeof id === 'number' ? (ok) => send(worker.child, { type: 'connection-passed', id, ok }) : undefined)
  } else if (message.type === 'load') {
    if (worker.state === 'serving') host.balance.report(worker, message.connections)
  } else if (message.type === 'stopping') {
    // Stopped on purpose (a signal sent to the worker itself): its exit is not a failed release.
    worker.stopping = true
    if (worker.cohort?.predecessor !== undefined) host.probations.end(worker.cohort)
    host.stopped(worker)
  } else if (message.type === 'accepting-stopped') {
    host.probations.acceptingStopped(worker)
  } else if (message.type === 'reload-request') {
    void host.reload().then((result) => send(worker.child, { type: 'reload-result', id: message.id, result: toWire(result) }))
  }
}

/** A socket a worker bound itself: we keep it for every later generation. */
function holdListener (host: MessageHost, worker: Worker, name: string, handle: unknown): void {
  const kept = host.held.hold(worker.slot, name, handle)
  if (kept === null) {
    host.log.warn({ supervisor: 'listener-ignored', workerPid: worker.pid }, `supervisor: ignored a listener message without a usable socket (${name})`)
  } else if (kept !== undefined) {
    host.log.info({ supervisor: 'holding-socket', slot: worker.slot, fd: (handle as { fd: number }).fd, address: kept }, `supervisor: holding listening socket ${name} for later generations`)
  }
}

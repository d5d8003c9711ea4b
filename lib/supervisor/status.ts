// The supervisor's status, as `fastify-hot-reload status` and the control socket give it: a snapshot
// built from the state of the modules that own it (Cohorts, SlotRestarts, HeldSockets, the Supervisor).
import { formatAddress } from '../listener-address'
import { PACKAGE_VERSION } from '../package-version'
import { toWire, type WireReloadResult } from '../reload-result'
import type { ReloadResult } from '../types'
import type { Cohorts } from './cohorts'
import type { HeldSocket } from './probation'
import type { SlotRestarts } from './restart-policy'
import type { WorkerState } from './worker'

export interface SupervisorStatus {
  pid: number
  /** This package's version in the supervisor: what it started with, whatever the workers run now. */
  version: string
  state: 'starting' | 'serving' | 'reloading' | 'restarting' | 'stopping'
  generation: number
  /** Workers per generation. */
  workersPerGeneration: number
  /** How long a new generation is on probation (--probation; 0: none). */
  probationMs: number
  uptimeMs: number
  sockets: string[]
  /** `connections`: the keep-alive connections a serving worker last reported holding (several workers: the balance; long-lived and TLS ones not counted). */
  workers: Array<{ generation: number, slot: number, pid: number, state: WorkerState, uptimeMs: number, restarts: number, connections?: number, version?: string }>
  /** `rolledBack`: its generation crashed within the probation, and the one before serves again (why). */
  lastReload?: WireReloadResult & { rolledBack?: string }
  restarts: number
}

export interface StatusOf {
  stopping: boolean
  /** The first generation's start is under way (every slot started, as READY=1 waits for). */
  firstStart: boolean
  reloading: boolean
  cohorts: Cohorts
  restarts: SlotRestarts
  slots: number
  probationMs: number
  startedAt: number
  sockets: HeldSocket[]
  lastReload: ReloadResult | undefined
  /** The last reload's generation was rolled back (why). */
  rolledBack: string | undefined
  connectionsOf: (pid: number) => number | undefined
}

export function describeStatus (of: StatusOf): SupervisorStatus {
  const now = Date.now()
  const { cohorts, restarts } = of
  const state = of.stopping
    ? 'stopping'
    : of.firstStart ? 'starting' : of.reloading ? 'reloading' : cohorts.current !== undefined ? 'serving' : restarts.pending ? 'restarting' : 'starting'
  return {
    pid: process.pid,
    version: PACKAGE_VERSION,
    state,
    generation: cohorts.current?.generation ?? 0,
    workersPerGeneration: of.slots,
    probationMs: of.probationMs,
    uptimeMs: now - of.startedAt,
    sockets: of.sockets.map((socket) => formatAddress(socket.address)),
    workers: [...cohorts.workers.values()].map((w) => ({
      // A worker stopped by a signal sent to it drains, though it still holds its slot here.
      generation: w.generation, slot: w.slot, pid: w.pid, state: w.stopping === true ? 'draining' : w.state, uptimeMs: now - w.startedAt, restarts: restarts.of(w.slot), connections: of.connectionsOf(w.pid), version: w.version
    })),
    lastReload: of.lastReload === undefined ? undefined : { ...toWire(of.lastReload), ...(of.rolledBack === undefined ? {} : { rolledBack: of.rolledBack }) },
    restarts: restarts.total
  }
}

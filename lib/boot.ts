// Everything this package does when it is loaded, in one place: read how this process was started
// (a handoff from a previous generation or the supervisor, or systemd socket activation), clear
// that from the environment so the app's own children never see it, and connect to the parent
// early (an abort while the app still boots ends a successor at once).
import cluster from 'node:cluster'
import { clearHandoffEnv, readHandoff, type Handoff, type InheritedSocket } from './handoff-env'
import { captureLaunch, CHANNEL_VARS, ipcWatcher, type Launch } from './launch'
import { chooseMode, type Mode } from './mode'
import type { ParentLink } from './parent-link'
import { processPort, type ProcessPort } from './process-port'
import { readSocketActivation } from './socket-activation'

export interface BootInfo {
  handoff: Handoff | null
  /** Sockets from systemd socket activation (no handoff). */
  activated: InheritedSocket[] | null
  /** A malformed handoff or activation: the plugin refuses to start with it. */
  error: Error | undefined
  /** A worker of node:cluster (PM2 cluster mode is one): its primary owns the listening sockets. */
  clusterWorker: boolean
}

/** Pure: what the environment says about how we were started (Node takes NODE_UNIQUE_ID out of a cluster worker's, so that is asked of node:cluster). */
export function readBoot (env: Record<string, string | undefined>, pid = process.pid, clusterWorker = cluster.isWorker): BootInfo {
  try {
    const handoff = readHandoff(env)
    // No handoff from a previous generation: maybe systemd socket activation.
    return { handoff, activated: handoff === null ? readSocketActivation(env, pid) : null, error: undefined, clusterWorker }
  } catch (error) {
    return { handoff: null, activated: null, error: error as Error, clusterWorker }
  }
}

export interface Boot extends BootInfo {
  launch: Launch
  mode: Mode
  port: ProcessPort
  parent: ParentLink | undefined
  /** The inherited sockets, for the process's generation (then none are left): its instances claim them from one pool. */
  takeInheritance: () => InheritedSocket[]
}

let booted: Boot | undefined

/** Runs once per process; later calls get the same answer. */
export function boot (): Boot {
  if (booted !== undefined) return booted
  const launch = captureLaunch()
  const info = readBoot(process.env)
  // Neither the app's own children nor our successor start from these.
  if (info.handoff !== null || info.activated !== null || info.error !== undefined) clearHandoffEnv(process.env)
  clearHandoffEnv(launch.env)
  // A successor's IPC channel is ours, made by spawn(): one inherited from whoever forked this
  // process (a watcher, PM2, nodemon) would name an fd the successor holds a listening socket at.
  for (const name of CHANNEL_VARS) delete launch.env[name]
  const mode = chooseMode(info.handoff, info.clusterWorker, ipcWatcher(launch.args[0]))
  let unclaimed = info.handoff?.sockets ?? info.activated ?? []
  booted = {
    ...info,
    launch,
    mode,
    port: processPort,
    parent: info.handoff === null ? undefined : mode.connectParent(processPort),
    takeInheritance: () => {
      const sockets = unclaimed
      unclaimed = []
      return sockets
    }
  }
  return booted
}

// Standalone or supervised: the one module that knows which. A generation started by the
// supervisor leaves reloads, the sockets and systemd to it; a standalone one does them itself.
// Chosen once, at boot, from the handoff the process was started with.
import type { FastifyBaseLogger } from 'fastify'
import type { ConnectionOutlet } from './connection-handoff'
import { hotReloadError } from './errors'
import type { Handoff } from './handoff-env'
import type { Listeners } from './listeners'
import { formatAddress } from './listener-address'
import { ParentLink } from './parent-link'
import { PredecessorWatch } from './predecessor-watch'
import { isAlive } from './pid-file'
import type { ProcessPort } from './process-port'
import { createNotifier } from './sd-notify'
import { ServiceStatus } from './service-status'
import type { SuccessorChannel } from './successor-channel'
import type { ReloadResult } from './types'

export interface Mode {
  readonly name: 'standalone' | 'supervised' | 'cluster-worker'
  /** Why this process can never reload itself (whatever its state), or undefined. */
  readonly reloadUnsupported: string | undefined
  /**
   * A SIGTERM/SIGINT while it already stops is ignored (a supervised worker: its supervisor passes
   * on the signal it got, and forces a stop with SIGKILL), not an exit at once.
   */
  readonly repeatedStopSignalIgnored: boolean
  /** The link to whoever started us, connected early: an abort during boot ends us at once. */
  connectParent (port: ProcessPort): ParentLink | undefined
  /** Why this process must not serve at all, or undefined. */
  refusal (parent: ParentLink | undefined): Error | undefined
  status (pidFile: string | undefined, env: Record<string, string | undefined>, log: FastifyBaseLogger): ServiceStatus
  /** After listening: the parent keeps copies of our sockets (for later generations, or for our probation). */
  shareListeners (listeners: Listeners, parent: ParentLink, log: FastifyBaseLogger): Promise<void>
  /** An instance listened after we reported ready: `count` instances have listened now. */
  reportInstances (parent: ParentLink, count: number): void
  /** Reloads done elsewhere (the supervisor), or undefined to run them here. */
  delegatedReload (parent: ParentLink | undefined): Promise<ReloadResult> | undefined
  /** Where idle connections go during a reload's drain. */
  outlet (successor: SuccessorChannel | undefined, parent: ParentLink | undefined): ConnectionOutlet | undefined
  /** Calls `gone` when whoever we depend on is gone (the supervisor). */
  watchParent (port: ProcessPort, gone: () => void): void
  /** Just committed: the previous generation's exit, watched here when nobody else watches it. */
  watchPredecessor (parent: ParentLink, log: FastifyBaseLogger): PredecessorWatch | undefined
}

class Standalone implements Mode {
  readonly name: Mode['name'] = 'standalone'
  readonly reloadUnsupported: string | undefined = undefined
  readonly repeatedStopSignalIgnored = false

  /** `predecessorPid`: a successor's, the generation that started it (our parent). */
  constructor (private readonly predecessorPid?: number) {}

  connectParent (port: ProcessPort): ParentLink | undefined {
    return ParentLink.connect(port, { cutChannelOnBareCommit: true })
  }

  refusal (): undefined { return undefined }

  status (pidFile: string | undefined, env: Record<string, string | undefined>, log: FastifyBaseLogger): ServiceStatus {
    return new ServiceStatus(createNotifier(env, log), pidFile, log)
  }

  /** The previous generation keeps a copy of each adopted socket during our probation. */
  async shareListeners (listeners: Listeners, parent: ParentLink, log: FastifyBaseLogger): Promise<void> {
    for (const { server, socket } of listeners.adopted) {
      try {
        await parent.sendListener(formatAddress(socket.address), server)
      } catch (err) {
        log.warn({ hotReload: 'socket-copy-failed', err }, 'hot-reload: could not send a copy of a listening socket to the previous generation')
      }
    }
  }

  /** Our successor is started by us, from our own count. */
  reportInstances (): void {}

  delegatedReload (): undefined { return undefined }

  outlet (successor: SuccessorChannel | undefined): ConnectionOutlet | undefined {
    if (successor === undefined) return undefined
    return { get open () { return successor.takesConnections }, send: (listener, handle) => successor.sendConnection(listener, handle) }
  }

  watchParent (): void {}

  /** Only a predecessor that said by when it exits (older releases do not) is ever killed. */
  watchPredecessor (parent: ParentLink, log: FastifyBaseLogger): PredecessorWatch | undefined {
    const withinMs = parent.parentExitsWithinMs
    if (this.predecessorPid === undefined || withinMs === undefined) return undefined
    return new PredecessorWatch(this.predecessorPid, withinMs, log)
  }
}

class Supervised implements Mode {
  readonly name = 'supervised'
  readonly reloadUnsupported = undefined
  readonly repeatedStopSignalIgnored = true

  constructor (private readonly supervisorPid: number) {}

  connectParent (port: ProcessPort): ParentLink | undefined {
    return ParentLink.connect(port, { cutChannelOnBareCommit: false, supervisorChannel: true })
  }

  /** A worker never serves on the supervisor's sockets by itself: no one would reload or stop it. */
  refusal (parent: ParentLink | undefined, parentPid = process.ppid): Error | undefined {
    if (parent !== undefined && parent.connected) return undefined
    // A runner between the supervisor and node (npx, npm, tsx's CLI) starts node afresh: Node gave
    // the runner the channel, and the runner does not pass it on.
    if (parentPid !== this.supervisorPid && isAlive(this.supervisorPid)) {
      return hotReloadError('HOT_RELOAD_WORKER_NOT_CONNECTED',
        `fastify-hot-reload: this worker was started by the supervisor (pid ${this.supervisorPid}) through another process (pid ${parentPid}), which did not pass on its channel to the supervisor. ` +
        'Give the supervisor the node command itself after "--", with its flags: "fastify-hot-reload start -- node --import tsx app.ts", not "-- npx tsx app.ts" or "-- npm start"; not serving')
    }
    return hotReloadError('HOT_RELOAD_SUPERVISOR_GONE',
      `fastify-hot-reload: this worker was started by a supervisor (pid ${this.supervisorPid}) that is gone; not serving`)
  }

  /** The supervisor talks to systemd and keeps the pid file. */
  status (_pidFile: string | undefined, _env: Record<string, string | undefined>, log: FastifyBaseLogger): ServiceStatus {
    return new ServiceStatus(undefined, undefined, log)
  }

  /** The supervisor keeps a copy of every socket we bound ourselves, for later generations. */
  async shareListeners (listeners: Listeners, parent: ParentLink): Promise<void> {
    for (const { address, server } of listeners.boundHere()) await parent.sendListener(address, server)
  }

  /** The supervisor starts the next worker: it must know how many instances share the sockets it holds. */
  reportInstances (parent: ParentLink, count: number): void {
    parent.sendInstances(count)
  }

  delegatedReload (parent: ParentLink | undefined): Promise<ReloadResult> | undefined {
    return parent?.requestReload()
  }

  outlet (_successor: SuccessorChannel | undefined, parent: ParentLink | undefined): ConnectionOutlet | undefined {
    if (parent === undefined) return undefined
    return { get open () { return parent.connected }, send: (listener, handle) => parent.sendConnection(listener, handle) }
  }

  /** Like a cluster worker whose primary is gone: no one would resume, reload or stop us. */
  watchParent (port: ProcessPort, gone: () => void): void {
    port.once('disconnect', gone)
  }

  /** The supervisor kills a worker that drains too long (supervisor/drain-deadlines.ts). */
  watchPredecessor (): undefined { return undefined }
}

/**
 * A worker of node:cluster (PM2 cluster mode): its servers listen through the primary, which owns
 * the sockets (and accepts, round robin), so there is no socket to hand to a successor, and the
 * primary decides when workers come and go. The plugin keeps what works there: readiness, the
 * graceful drain at SIGTERM/SIGINT. Otherwise as standalone, without systemd or a pid file (the
 * primary is the service's process).
 */
class ClusterWorker extends Standalone {
  override readonly name = 'cluster-worker'
  override readonly reloadUnsupported = 'this is a cluster worker (node:cluster or PM2 cluster mode): its primary owns the listening sockets ' +
    'and restarts its workers (pm2 reload); for reloads on every core, run `fastify-hot-reload start --workers N` instead'

  override status (_pidFile: string | undefined, _env: Record<string, string | undefined>, log: FastifyBaseLogger): ServiceStatus {
    return new ServiceStatus(undefined, undefined, log)
  }
}

/**
 * The child of a development watcher (fastify-cli's `fastify start -w`): the watcher restarts it on
 * every change. A reload's successor would live outside the watcher and hold the port its next
 * restart binds: reload signals are answered HOT_RELOAD_UNSUPPORTED, and the watcher's restarts
 * work as without the plugin. Otherwise standalone.
 */
class WatchedChild extends Standalone {
  override readonly reloadUnsupported: string

  constructor (watcher: string) {
    super()
    this.reloadUnsupported = `${watcher} restarts the app on every change itself; a reload's successor would run outside it`
  }
}

export function chooseMode (handoff: Handoff | null, clusterWorker = false, watcher?: string): Mode {
  if (handoff?.supervised === true) return new Supervised(handoff.parentPid)
  if (handoff !== null) return new Standalone(handoff.parentPid)
  if (clusterWorker) return new ClusterWorker()
  return watcher !== undefined ? new WatchedChild(watcher) : new Standalone()
}

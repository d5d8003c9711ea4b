// Public types of fastify-hot-reload. Everything a user can pass in or get back is declared here.
import type { EventEmitter } from 'node:events'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** Where a generation is in its life. */
export type HotReloadState = 'starting' | 'serving' | 'reloading' | 'draining' | 'closed'

/** A signal that may start a reload (the others end the process, cannot be caught, or come unasked). */
export type ReloadSignal = 'SIGHUP' | 'SIGUSR1' | 'SIGUSR2' | 'SIGWINCH' | 'SIGCONT' | 'SIGALRM' | 'SIGPWR'

/**
 * Options passed to @fastify/under-pressure 9 (see its README), whose verdict `/health` reports;
 * the same keys it takes, checked at registration.
 */
export interface UnderPressureOptions {
  maxEventLoopDelay?: number | undefined
  maxEventLoopUtilization?: number | undefined
  eventLoopUtilizationMode?: 'cumulative' | 'interval' | undefined
  maxHeapUsedBytes?: number | undefined
  maxRssBytes?: number | undefined
  message?: string | undefined
  retryAfter?: number | undefined
  healthCheck?: ((fastify: FastifyInstance) => Promise<Record<string, unknown> | boolean>) | undefined
  healthCheckInterval?: number | undefined
  pressureHandler?: ((request: FastifyRequest, reply: FastifyReply, type: string, value: number | undefined) => Promise<void> | void) | undefined
  sampleInterval?: number | undefined
  exposeStatusRoute?: boolean | string | { routeOpts: object, routeSchemaOpts?: object, routeResponseSchemaOpts?: object, url?: string } | undefined
  customError?: Error | (new () => Error) | undefined
}

/** Overrides for how the successor process is started. Defaults: this process's own. */
export interface SuccessorOptions {
  /** Node binary. Default `process.execPath`. */
  execPath?: string | undefined
  /** Node flags. Default the ones this process was started with. */
  execArgv?: string[] | undefined
  /**
   * Script and its arguments. Default the command line this process was really started with
   * (`/proc/self/cmdline`, whatever the app or a runner did to `process.argv`), rebased on the logical cwd.
   */
  args?: string[] | undefined
  /**
   * Extra environment, merged over the environment this process was started with
   * (`/proc/self/environ`: what the app set in `process.env` since, a `.env` loaded, say, is not
   * carried over, so a new release reads its own); `undefined` removes a variable.
   */
  env?: Record<string, string | undefined> | undefined
  /** Working directory. Default the logical one (`$PWD` when it named this directory at start). */
  cwd?: string | undefined
}

export interface HotReloadOptions {
  /** Signals that start a reload. Default `['SIGUSR2']`; `[]` for `reload()` only. */
  reloadSignals?: ReloadSignal[] | undefined
  /** How long (ms) a successor may take to report ready. Default 30000. */
  readyTimeout?: number | undefined
  /** How long (ms) a draining generation waits for its connections before cutting them. Default 30000. */
  drainTimeout?: number | undefined
  /** During a drain, an idle keep-alive connection is closed once it has been idle this long (ms). Default 1000. */
  idleGrace?: number | undefined
  /** Readiness route. Default `/health`; `false` disables it. */
  healthPath?: string | false | undefined
  /** Liveness route (200 while the process works, draining included). Default `/health/live`; `false` disables it. */
  livenessPath?: string | false | undefined
  /** Options for @fastify/under-pressure, whose verdict `/health` reports. Not registered unless given (`{}` registers it without thresholds); `false` skips it. */
  underPressure?: UnderPressureOptions | false | undefined
  /** Drain and exit on SIGTERM/SIGINT (through close-with-grace). Default `true`. */
  gracefulShutdown?: boolean | undefined
  /** How the successor is started. */
  successor?: SuccessorOptions | undefined
  /**
   * Keep the pid that was started (by npm, tsx, PM2, nodemon, Docker, systemd): just before the
   * first listen, the process replaces itself (`process.execve`, Node 22.15 or later) with the
   * supervisor, which runs the app as its generations under that same pid. Default `true`, except in
   * a test runner (`node --test`, tap, jest, vitest); `false` keeps standalone reloads, where each
   * generation is a new process. The variable `FASTIFY_HOT_RELOAD_KEEP_PID` (1 or 0) overrides both.
   * On a Node without `process.execve` a warning says that the pid will change at each reload.
   */
  keepPid?: boolean | undefined
  /** Standalone mode: keep the serving generation's pid in this file (for systemd PIDFile= and `fastify-hot-reload reload --pid-file`). */
  pidFile?: string | undefined
  /**
   * During a drain, hand idle keep-alive connections (plain HTTP/1.1) to the new generation instead
   * of closing them: clients keep their connection, no reconnect. Default `true`; `false` drains
   * them the ordinary way (`Connection: close`, clients reconnect). TLS, HTTP/2 and upgraded
   * connections always drain the ordinary way.
   */
  connectionHandoff?: boolean | undefined
  /**
   * Standalone mode: after a reload, the old generation keeps a copy of the listening sockets (not
   * accepting on them) until the successor has served this long (ms). If the successor exits
   * meanwhile, the old generation takes the sockets back and serves again (event `resumed`).
   * Default 2000; 0 turns it off. Under the supervisor, which holds the sockets, its `--probation`
   * decides (with keepPid, the supervisor takes this option's value).
   */
  probation?: number | undefined
  /**
   * A reload's successor boots this many niceness steps below the generation that serves meanwhile,
   * and gets its priority back once its app has listened, once it waits for a CPU most of the time
   * (every core is busy), or after 1 s at the latest, so that its boot takes less CPU from the
   * requests being answered without holding the reload up.
   * Linux only, and only where it can be set back: a supervised worker through its scheduler
   * autogroup, any successor's threads when the process may raise a priority (root with
   * CAP_SYS_NICE, or RLIMIT_NICE). 0 to 19; default 10; 0 turns it off.
   */
  bootNice?: number | undefined
  /**
   * How many old generations may be draining at once. When a reload would make one more, the oldest
   * ends its drain now: what it still has open is cut (and counted in its log). Default 5.
   */
  maxDrainingGenerations?: number | undefined
  /**
   * Over this window (ms) from the start of a drain, long-lived connections are ended the way their
   * protocol means, each at its own random moment, so that their clients do not all reconnect in
   * one burst: WebSockets of @fastify/websocket get a close frame 1001 (Going Away), `text/event-stream`
   * responses end (EventSource reconnects with Last-Event-ID), other upgraded connections are handed
   * to the `upgradeDraining` event. 0 ends them all at once. Must be less than `drainTimeout`.
   * Default half of `drainTimeout`.
   */
  closeSpread?: number | undefined
}

/** What a reload did. `generation` and `pid` name the generation serving once it is over. */
export interface ReloadResult {
  ok: boolean
  generation: number
  pid: number
  /** From the signal (or `reload()`) until the successor was ready and committed. */
  durationMs: number
  /**
   * The successor's own boot: from its spawn to its app's `listen()` (what a plain start of the app
   * takes, under the same load). `durationMs - bootMs` is what the reload added: asking for it,
   * the readiness check, adopting the sockets, reporting ready, the commit. Successful reloads
   * only, from a successor that said when it listened (this release or later); with `--workers`,
   * the boot of the worker that was ready last.
   */
  bootMs?: number
  /** The successor's pid, when one was spawned. */
  successorPid?: number
  /** Why the reload failed (`ok: false` only). */
  error?: HotReloadError
}

export interface HotReloadError extends Error {
  code: string
}

export interface DrainResult {
  durationMs: number
  /** Connections still open at the deadline and closed by force. */
  cutConnections: number
  /** Keep-alive connections handed to the new generation (connectionHandoff). */
  movedConnections: number
  reason: 'reload' | 'shutdown'
}

/** An upgraded connection (not a WebSocket of @fastify/websocket) whose moment to close has come. */
export interface UpgradeDrainingInfo {
  /** The upgraded connection (the socket Node's 'upgrade' event gave). */
  socket: Duplex
  /** The request that asked for the upgrade (its url and `upgrade` header say which protocol). */
  request: IncomingMessage
  /** Ms until `drainTimeout`, when what is still open is cut. */
  timeLeft: number
}

export interface HotReloadEvents {
  state: [state: HotReloadState, previous: HotReloadState]
  reloading: [info: { generation: number, successorPid?: number }]
  reloaded: [result: ReloadResult]
  reloadFailed: [result: ReloadResult]
  draining: [info: { reason: 'reload' | 'shutdown' }]
  drained: [result: DrainResult]
  /** This process became the serving generation: at first start, when its predecessor committed it, or when it resumed. */
  serving: [info: { generation: number, pid: number }]
  /**
   * The successor exited during its probation: this generation took the sockets back and serves
   * again. `successorPid` is absent when no successor process was spawned (with `--reload-batch`,
   * a later batch that could not start takes the earlier batches back).
   */
  resumed: [info: { generation: number, successorPid?: number, reason: string }]
  /**
   * Draining: an upgraded connection the plugin cannot close itself (not a WebSocket of
   * @fastify/websocket: a ws or socket.io server of the app's own, or another protocol) has reached
   * its moment in the `closeSpread` window. Close it the protocol's graceful way within `timeLeft`
   * ms; without a listener it is cut at `drainTimeout`.
   */
  upgradeDraining: [info: UpgradeDrainingInfo]
}

/** The `fastify.hotReload` decorator. */
export interface HotReloadController extends EventEmitter<HotReloadEvents> {
  /** Start a reload (the same as the signal). Never rejects: a failed successor gives `ok: false`. */
  reload(): Promise<ReloadResult>
  /** 1 for the first start, +1 per successful reload. */
  readonly generation: number
  readonly state: HotReloadState
  readonly pid: number
}

// The decorator on every Fastify instance the plugin is registered on. Declared here, beside the types,
// because every declaration entry of the package reaches this file.
declare module 'fastify' {
  interface FastifyInstance {
    hotReload: HotReloadController
  }
}

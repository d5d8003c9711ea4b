// Messages between generations (and between a supervisor and its workers) over the IPC channel,
// namespaced so that an app's own IPC traffic and ours never mix.
import type { WireReloadResult } from './reload-result'

const KEY = 'fastify-hot-reload'

export type ChildMessage =
  /**
   * `instances`: how many Fastify instances listen (said when more than one). `listenedAt`: when
   * the app called listen(), on the machine's monotonic clock in ms (lib/boot-clock.ts); the parent
   * takes its spawn time from it: the successor's own boot. Absent from older releases. `covers`: it
   * accepts on another slot's socket when told to ('cover'); a release without it is never asked.
   * `version`: this package's version in the sender (the supervisor's status shows it).
   * `acksDrain`: told to 'drain', it answers 'accepting-stopped' (older releases do not: no one waits for it).
   */
  | { type: 'ready', pid: number, generation: number, instances?: number, listenedAt?: number, covers?: boolean, version?: string, acksDrain?: boolean }
  /** Supervised: the answer to 'drain', sent once the worker no longer accepts a connection. */
  | { type: 'accepting-stopped' }
  /** Supervised: a Fastify instance that listened after 'ready'; `count` instances have listened now. */
  | { type: 'instances', count: number }
  /**
   * The app called listen() (its boot is done); its readiness check comes next. The parent gives
   * back the CPU priority the boot ran at, and a supervisor booting a generation's workers in waves
   * starts the next wave. Releases before bootNice said it after the check; older ones not at all
   * (the next wave waits for their 'ready').
   */
  | { type: 'listening' }
  /** `code`: a failure with a code of its own (an unclaimed socket); otherwise HOT_RELOAD_SUCCESSOR_FAILED. */
  | { type: 'failed', message: string, code?: 'HOT_RELOAD_UNCLAIMED_SOCKET' }
  /**
   * An exception nobody caught (or a rejection nobody handled) is about to end the process before it
   * said ready: what it was, so that the reload's failure names the cause. Absent from older releases.
   */
  | { type: 'crashing', cause: string }
  /**
   * The app's boot failed (its ready() or listen() rejected) before it said ready: what with. The app
   * may catch that and exit, or live on without listening. Absent from older releases.
   */
  | { type: 'boot-failed', cause: string }
  /** Its readiness check did not pass yet: why (said again when that changes). Absent from older releases. */
  | { type: 'not-ready', reason: string }
  /**
   * Told to abort, the successor drains and exits: the parent waits for that (absent from older
   * releases, which are given only a short time then).
   */
  | { type: 'aborting' }
  /**
   * A listening socket, sent with its handle: one the worker bound itself (supervised mode), or a
   * copy of an adopted one that the previous generation keeps during the probation (standalone).
   */
  | { type: 'listener', address: string }
  /** The sender shuts down on purpose (SIGTERM/SIGINT): its exit ends a probation, it does not fail it. */
  | { type: 'stopping' }
  /** Standalone: `newer` generations, the sender first, are draining now (see maxDrainingGenerations). */
  | { type: 'behind', newer: number }
  /** The app called reload() or got a reload signal: the supervisor does reloads (supervised mode). */
  | { type: 'reload-request', id: number }
  /**
   * An idle keep-alive connection, sent with its handle: handed to the next generation (draining),
   * or to the least loaded worker (a serving worker told to 'shed'). `id` (when the supervisor said
   * `passAcks`): answer 'connection-passed' with it once the connection is passed on.
   */
  | { type: 'connection', listener: string, id?: number }
  /** Supervised, once asked ('balance'): how many connections the worker holds now. */
  | { type: 'load', connections: number }
  /**
   * Standalone: the sender's own drain is over (a predecessor that drains longer may still be
   * handing it connections): send no more, and answer 'handoffs-ended'. Older releases never ask.
   */
  | { type: 'handoffs-end' }

export type ParentMessage =
  /**
   * `keepChannel`: the predecessor will hand over connections on this channel, then cut it.
   * `passAcks` (the supervisor): a 'connection' with an `id` is answered by 'connection-passed'.
   * `exitWithinMs` (standalone): the predecessor exits by itself within that many ms from now, its
   * drain and close bounded by its own options; past that its successor kills it (predecessor-watch.ts).
   */
  | { type: 'commit', keepChannel?: boolean, passAcks?: boolean, exitWithinMs?: number }
  /**
   * Supervised: the connection sent with `id` has been passed on to a serving worker (`ok`), or could
   * not be (closed here; the sender still has its own copy and keeps it).
   */
  | { type: 'connection-passed', id: number, ok: boolean }
  /** An idle keep-alive connection from the draining generation, sent with its handle. */
  | { type: 'connection', listener: string }
  /** The answer to 'handoffs-end': no connection comes after it (the channel keeps order: every one sent before is read first). */
  | { type: 'handoffs-ended' }
  | { type: 'abort' }
  /**
   * Supervised mode: a successor serves now; drain and exit. With `probation`, wait after the drain
   * for 'retire' (exit) or 'resume' (serve again, on the 'listener' copies sent just before).
   * `rampMs`: spread the connections' moves over this long (the supervisor's probation decides it;
   * absent from older releases: the worker's own options do).
   */
  | { type: 'drain', probation?: boolean, rampMs?: number }
  /** Supervised mode: a copy of a listening socket, sent with its handle, for a resume. */
  | { type: 'listener', address: string }
  /** Supervised mode: the successor proved itself; finish and exit. */
  | { type: 'retire' }
  /**
   * Supervised mode: the successor died within its probation; serve again. `successorPid` is absent
   * when none was spawned (a rolling reload's later batch could not start); older releases said 0.
   */
  | { type: 'resume', successorPid?: number, reason: string }
  /** Supervised mode: too many generations drain at once; end this drain now (cut what is left). */
  | { type: 'cut' }
  | { type: 'reload-result', id: number, result: WireReloadResult }
  /** Supervised: a reload began; this worker's successor (the new worker of its slot) is spawned. */
  | { type: 'reloading', generation: number, successorPid?: number }
  /** Supervised: the reload this worker was told of is over (before its drain order, when it succeeded). */
  | { type: 'reload-finished', result: WireReloadResult }
  /**
   * Supervised, a socket per slot: slot `slot` has no serving worker; accept on this copy of its
   * socket for `listener` (sent with its handle) too, until 'uncover'.
   */
  | { type: 'cover', slot: number, listener: string }
  /** Slot `slot` serves again: close the copies of its sockets (only ours; the supervisor keeps them). */
  | { type: 'uncover', slot: number }
  /** Several workers: report 'load' every `every` ms when it changed. */
  | { type: 'balance', every: number }
  /** You hold more than your share: hand `count` idle connections to the supervisor ('connection'). */
  | { type: 'shed', count: number }

export function unwrap (value: unknown): { type: string, [key: string]: unknown } | undefined {
  if (typeof value !== 'object' || value === null || !(KEY in value)) return undefined
  const inner = (value as Record<string, unknown>)[KEY]
  if (typeof inner !== 'object' || inner === null || typeof (inner as { type?: unknown }).type !== 'string') return undefined
  return inner as { type: string }
}

export function wrap (message: ChildMessage | ParentMessage): object {
  return { [KEY]: message }
}

// The signals a generation answers: its reload signals, and SIGTERM/SIGINT for a graceful shutdown
// (through close-with-grace, which gives one path to the exit and a forced exit past its delay).
// The reload signals are taken at registration, not at takeover: until a process handles a signal,
// Node's default action for SIGUSR2 or SIGHUP ends it, and a slow boot makes that window long.
// A reload signal must not also shut the service down: fastify-cli (`fastify start`) installs
// close-with-grace on SIGUSR2 and SIGHUP too, and nodemon restarts on SIGUSR2. Listeners that were
// already on a reload signal, or are added while we hold it (fastify-cli installs close-with-grace
// after the app's plugins registered, before it listens), are set aside, with a warning, and given
// back when the app closes.
import closeWithGrace from 'close-with-grace'
import type { FastifyBaseLogger } from 'fastify'
import type { PortListener, ProcessPort } from './process-port'
import { generationField } from './log-fields'
import { logWritten } from './log-settle'

// close-with-grace listens to these too; the plugin handles only SIGTERM and SIGINT.
const NOT_OURS: closeWithGrace.AllEvents[] = ['SIGHUP', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGUSR2',
  'uncaughtException', 'unhandledRejection', 'beforeExit']

/** The reload signals, held from registration until the app closes. */
export class ReloadSignals {
  private readonly installed: Array<[NodeJS.Signals, () => void]> = []
  private readonly setAside: Array<[NodeJS.Signals, PortListener]> = []

  /** Said at warn level once (see setAsideOthers); every later time at info. */
  private warned: boolean

  /**
   * Takes `signals` now; `reload` runs on each. Node's signal handles do not keep the process alive.
   * `successor`: a later generation, whose app sets up the same listeners the first one's did (the
   * first one warned about them).
   */
  constructor (private readonly port: ProcessPort, private readonly log: FastifyBaseLogger, signals: NodeJS.Signals[], reload: () => void, successor = false) {
    this.warned = successor
    for (const signal of signals) {
      const handler = (): void => {
        log.info({ hotReload: 'signal-received', signal }, `hot-reload: ${signal} received`)
        reload()
      }
      this.installed.push([signal, handler])
    }
    this.setAsideOthers()
    for (const [signal, handler] of this.installed) port.on(signal, handler)
    port.on('newListener', this.onNewListener)
  }

  /** Another listener on one of our signals: Node adds it once this returns, so it is set aside just after. */
  private readonly onNewListener = (event: string | symbol, listener: unknown): void => {
    if (!this.installed.some(([signal, ours]) => signal === event && ours !== listener)) return
    process.nextTick(() => { if (this.installed.length > 0) this.setAsideOthers() })
  }

  /** Sets aside every other listener of our signals (at registration, and whenever one is added). */
  private setAsideOthers (): void {
    const { port, log } = this
    for (const [signal, ours] of this.installed) {
      const others = port.listeners(signal).filter((listener) => listener !== ours)
      if (others.length === 0) continue
      // Once at warn (the first generation's first time); fastify-cli's close-with-grace comes back
      // with every generation, and adds more at its first SIGTERM: expected, said at info.
      log[this.warned ? 'info' : 'warn']({ hotReload: 'signal-listeners-set-aside', signal, listeners: others.length },
        `hot-reload: ${signal} had ${others.length} other listener(s) (fastify-cli's close-with-grace shuts the app down on it); they are set aside while ${signal} reloads`)
      this.warned = true
      for (const other of others) {
        port.off(signal, other)
        this.setAside.push([signal, other])
      }
    }
  }

  /** Gives the signals back: ours off, the listeners set aside on again. */
  release (): void {
    this.port.off('newListener', this.onNewListener)
    for (const [signal, handler] of this.installed.splice(0)) this.port.off(signal, handler)
    for (const [signal, other] of this.setAside.splice(0)) this.port.on(signal, other)
  }
}

export interface Shutdown {
  /** This process's generation (the close-timeout record names it). */
  generation: number
  forceAfterMs: number
  /** Drains and closes; resolves with the exit code (1: the app's onClose hooks did not finish in time). */
  run: () => Promise<number>
  /** Ends the process with a code other than 0 (close-with-grace ends it with 0 once `run` resolves). */
  exit: (code: number) => void
  /** A SIGTERM/SIGINT after the first is ignored for good, not only within SAME_STOP_MS (a supervised worker). */
  ignoreRepeats: boolean
}

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const

/**
 * A repeat this soon after the first stop signal is the same stop delivered twice, not someone
 * asking to force it: npm passes on the Ctrl-C the terminal also sent to its whole process group,
 * and coreutils `timeout` signals its child and the child's group.
 */
export const SAME_STOP_MS = 300

/**
 * After the first SIGTERM/SIGINT, once every listener has had it: a repeat is only logged, for
 * SAME_STOP_MS, or for good (`forGood`: a supervised worker). A supervised worker gets repeats as a
 * matter of course: its supervisor passes on the signal it got, while systemd's default stop
 * (KillMode=control-group), PM2, `pkill` or `killall` signal every process at once; its supervisor
 * forces a stop with SIGKILL. close-with-grace (ours, and an app's own, as fastify-cli's) would end
 * the process at the second signal, cutting its drain: every other listener is set aside meanwhile
 * (and put back after the window). Ours goes on first, so that a signal is never without a listener
 * (Node would let it end the process).
 */
function holdRepeatedStopSignals (log: FastifyBaseLogger, forGood: boolean): void {
  for (const signal of STOP_SIGNALS) {
    const ignore = (): void => {
      log.info({ hotReload: 'signal-ignored', signal }, `hot-reload: ${signal} again while stopping; ignored (${forGood ? 'the supervisor ends this worker if it does not stop in time' : 'the same stop delivered twice'})`)
    }
    process.on(signal, ignore)
    const held = (process.listeners(signal) as Array<() => void>).filter((listener) => listener !== ignore)
    for (const listener of held) process.off(signal, listener)
    if (forGood) continue
    setTimeout(() => {
      for (const listener of held) process.on(signal, listener)
      process.off(signal, ignore)
    }, SAME_STOP_MS).unref()
  }
}

/** SIGTERM/SIGINT drain and exit (installed once the generation serves); returns the function that removes them. */
export function installShutdown (log: FastifyBaseLogger, shutdown: Shutdown): () => void {
  // The same record of an app close cut short as after a reload (Handover's close-timeout), whichever
  // deadline comes first: this one (from the signal) or the drain's own (from the drain's start).
  const onTimeout = (delay: number): void => {
    log.error({ hotReload: 'close-timeout', ...generationField(log, shutdown.generation), waitedMs: delay }, `hot-reload: the shutdown (the drain and the app's onClose hooks) did not finish within ${delay} ms; exiting with code 1`)
  }
  // At the first signal close-with-grace takes its listener off and puts another on: with no other
  // listener, Node gives the signal its default action in between, and a second signal then
  // (a supervised worker's supervisor passing on the one it got) killed the process outright.
  const keepHandled = (): void => {}
  for (const signal of STOP_SIGNALS) process.on(signal, keepHandled)
  const graceful = closeWithGrace({ delay: shutdown.forceAfterMs, logger: log, skip: NOT_OURS, onTimeout }, async ({ signal }) => {
    // The other listeners of this signal still get it: the emit runs on a copy of the list.
    if (signal !== undefined) process.nextTick(() => holdRepeatedStopSignals(log, shutdown.ignoreRepeats))
    log.info({ hotReload: 'shutting-down', signal }, `hot-reload: ${signal ?? 'shutdown'} received; draining and exiting`)
    const code = await shutdown.run()
    // close-with-grace exits at once when this resolves: our last lines must not still be on their way (lib/log-settle.ts).
    await logWritten(log)
    if (code !== 0) shutdown.exit(code)
  })
  return () => {
    graceful.uninstall()
    for (const signal of STOP_SIGNALS) process.off(signal, keepHandled)
  }
}

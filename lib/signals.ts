// The signals a generation answers: its reload signals, and SIGTERM/SIGINT for a graceful shutdown
// (through close-with-grace, which gives one path to the exit and a forced exit past its delay).
// A reload signal must not also shut the service down: fastify-cli (`fastify start`) installs
// close-with-grace on SIGUSR2 and SIGHUP too, and nodemon restarts on SIGUSR2. Listeners that were
// already on a reload signal are set aside, with a warning, and given back when the app closes.
import closeWithGrace from 'close-with-grace'
import type { FastifyBaseLogger } from 'fastify'
import type { PortListener, ProcessPort } from './process-port'

// close-with-grace listens to these too; the plugin handles only SIGTERM and SIGINT.
const NOT_OURS: closeWithGrace.AllEvents[] = ['SIGHUP', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGUSR2',
  'uncaughtException', 'unhandledRejection', 'beforeExit']

export interface SignalPlan {
  reloadSignals: NodeJS.Signals[]
  /** Drain and exit on SIGTERM/SIGINT; undefined leaves them alone. */
  shutdown: { forceAfterMs: number, run: () => Promise<unknown> } | undefined
  reload: () => void
}

/** Installs the handlers; returns the function that removes them all. */
export function installSignals (port: ProcessPort, log: FastifyBaseLogger, plan: SignalPlan): () => void {
  const installed: Array<[NodeJS.Signals, () => void]> = []
  const setAside: Array<[NodeJS.Signals, PortListener]> = []
  for (const signal of plan.reloadSignals) {
    const others = port.listeners(signal)
    if (others.length > 0) {
      log.warn({ hotReload: 'signal-listeners-set-aside', signal, listeners: others.length },
        `hot-reload: ${signal} had ${others.length} other listener(s) (fastify-cli's close-with-grace shuts the app down on it); they are set aside while ${signal} reloads`)
      for (const other of others) {
        port.off(signal, other)
        setAside.push([signal, other])
      }
    }
    const handler = (): void => {
      log.info({ hotReload: 'signal-received', signal }, `hot-reload: ${signal} received`)
      plan.reload()
    }
    installed.push([signal, handler])
    port.on(signal, handler)
  }
  const shutdown = plan.shutdown
  const graceful = shutdown === undefined
    ? undefined
    : closeWithGrace({ delay: shutdown.forceAfterMs, logger: log, skip: NOT_OURS }, async ({ signal }) => {
      log.info({ hotReload: 'shutting-down', signal }, `hot-reload: ${signal ?? 'shutdown'} received; draining and exiting`)
      await shutdown.run()
    })
  return () => {
    for (const [signal, handler] of installed.splice(0)) port.off(signal, handler)
    for (const [signal, other] of setAside.splice(0)) port.on(signal, other)
    graceful?.uninstall()
  }
}

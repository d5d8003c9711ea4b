// The signals a generation answers: its reload signals, and SIGTERM/SIGINT for a graceful shutdown
// (through close-with-grace, which gives one path to the exit and a forced exit past its delay).
import closeWithGrace from 'close-with-grace'
import type { FastifyBaseLogger } from 'fastify'
import type { ProcessPort } from './process-port'

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
  for (const signal of plan.reloadSignals) {
    const handler = (): void => {
      log.info(`hot-reload: ${signal} received`)
      plan.reload()
    }
    installed.push([signal, handler])
    port.on(signal, handler)
  }
  const shutdown = plan.shutdown
  const graceful = shutdown === undefined
    ? undefined
    : closeWithGrace({ delay: shutdown.forceAfterMs, logger: log, skip: NOT_OURS }, async ({ signal }) => {
      log.info(`hot-reload: ${signal ?? 'shutdown'} received; draining and exiting`)
      await shutdown.run()
    })
  return () => {
    for (const [signal, handler] of installed.splice(0)) port.off(signal, handler)
    graceful?.uninstall()
  }
}

// The end of a supervisor's shutdown: every worker gets SIGTERM (and drains), and one that has not
// exited after the grace gets SIGKILL. Apart from the Supervisor because it is only about processes
// and time; the workers' map stays Cohorts' (it shrinks as workers exit, which is what we wait for).
import type { EventEmitter } from 'node:events'
import type { SupervisorLogger } from './options'
import type { Worker } from './worker'

/** How often the wait looks at the deadline when no worker exits. */
const POLL_MS = 100

/** Resolves with how many workers had to be killed. `events` says 'worker-exit' as each one exits. */
export async function stopWorkers (workers: ReadonlyMap<number, Worker>, graceMs: number, events: EventEmitter, log: SupervisorLogger): Promise<number> {
  for (const worker of workers.values()) {
    // One that said it stops (signalled itself, as systemd's default stop signals every process) drains already.
    if (worker.stopping === true) continue
    try { process.kill(worker.pid, 'SIGTERM') } catch {}
  }
  const deadline = Date.now() + graceMs
  while (workers.size > 0 && Date.now() < deadline) await nextExitOrPoll(events)
  let killed = 0
  for (const worker of workers.values()) {
    log.error({ supervisor: 'worker-killed', workerPid: worker.pid, generation: worker.generation },
      `supervisor: generation ${worker.generation} (pid ${worker.pid}) did not stop in time; killing it`)
    try { process.kill(worker.pid, 'SIGKILL') } catch {}
    killed++
  }
  return killed
}

/**
 * The next 'worker-exit', or POLL_MS, whichever comes first. A poll that times out takes its
 * listener back: a worker that drains for seconds would otherwise leave one per poll (Node warns
 * at 11: MaxListenersExceededWarning).
 */
async function nextExitOrPoll (events: EventEmitter): Promise<void> {
  await new Promise<void>((resolve) => {
    const onExit = (): void => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      events.off('worker-exit', onExit)
      resolve()
    }, POLL_MS)
    events.once('worker-exit', onExit)
  })
}

// --reload-batch K: a reload that replaces K slots at a time, for hosts where twice the workers do
// not fit. Each batch's new workers join the new generation and the old workers of those slots drain
// on probation; a failure in any batch takes the whole reload back (the new workers drain away, the
// replaced old ones serve again), so it is all or nothing. The Supervisor runs it behind its reload
// gate and records the result; the cohorts change only through Cohorts.
import { hotReloadError } from '../errors'
import { failed, succeeded } from '../reload-result'
import type { ServiceStatus } from '../service-status'
import type { HotReloadError, ReloadResult } from '../types'
import type { Cohorts } from './cohorts'
import type { HeldSockets } from './held-sockets'
import type { Probations } from './probation'
import type { SupervisorLogger } from './options'
import { otherVersion, otherVersionWords, type Cohort, type Worker } from './worker'

export interface RollingHost {
  log: SupervisorLogger
  status: ServiceStatus
  slots: number[]
  cohorts: Cohorts
  probations: Probations
  held: HeldSockets
  /** Starts workers for `slots` into `cohort` (one batch). */
  launch: (slots: number[], cohort: Cohort) => Promise<ReloadResult>
  /** Slots of the serving generation without a worker get one. */
  fill: () => void
}

export async function rollingReload (host: RollingHost, batch: number): Promise<ReloadResult> {
  const { log, status, slots: allSlots, cohorts, probations } = host
  const previous = cohorts.current as Cohort
  const next = cohorts.generation + 1
  const startedAt = performance.now()
  status.reloading(next)
  const cohort: Cohort = { generation: next, workers: new Map() }
  cohorts.build(cohort)
  const replaced: Worker[] = []
  let failure: ReloadResult | undefined
  for (let i = 0; i < allSlots.length && failure === undefined; i += batch) {
    const slots = allSlots.slice(i, i + batch)
    const step = await host.launch(slots, cohort)
    if (!step.ok) {
      failure = step
      break
    }
    if (cohort.crashed !== undefined) break
    for (const slot of slots) {
      const old = previous.workers.get(slot)
      if (old === undefined) continue
      probations.drain(old, true)
      replaced.push(old)
    }
  }
  cohorts.build(undefined)
  // A worker of an earlier batch crashed meanwhile: as a failed batch.
  if (failure === undefined && cohort.crashed !== undefined) {
    failure = failed({ generation: previous.generation, pid: 0 }, startedAt, cohort.crashed.pid, hotReloadError('HOT_RELOAD_SUCCESSOR_EXITED', cohort.crashed.reason))
  }
  if (failure !== undefined) {
    const reason = `generation ${next} failed in a rolling reload: ${failure.error?.message}`
    for (const worker of cohort.workers.values()) probations.drain(worker, false)
    const back = replaced.filter((w) => cohorts.workers.has(w.pid) && w.child.connected)
    probations.serveAgain(back, (w) => host.held.forSlot(w.slot), failure.successorPid, reason)
    for (const worker of back) worker.state = 'serving'
    log.error({ supervisor: 'generation-failed', trigger: 'reload', generation: next, servingGeneration: previous.generation, err: failure.error },
      `supervisor: reload failed, generation ${previous.generation} keeps serving: ${failure.error?.message}`)
    status.reloadFailed(failure.error?.message ?? 'unknown')
    if (previous.workers.size < allSlots.length) host.fill()
    // Named after the generation that serves again (the build is over: only it serves), and timed
    // from the reload's start; the failed batch's own result names neither.
    return failed({ generation: previous.generation, pid: cohorts.servingPid ?? 0 }, startedAt, failure.successorPid, failure.error as HotReloadError)
  }
  cohorts.commit(cohort)
  // Serving means that a new connection reaches the new code: not before the replaced workers heard their drain order.
  await probations.stoppedAccepting(replaced)
  const result = succeeded(next, cohorts.servingPid ?? 0, startedAt)
  const pids = [...cohort.workers.values()].map((w) => w.pid)
  const other = otherVersion(cohort)
  log.info({ supervisor: 'generation-serving', generation: next, workerPid: pids[0], workerPids: pids, durationMs: result.durationMs, ...other },
    `supervisor: generation ${next} (pid ${pids.join(', ')}) is serving after ${result.durationMs} ms (rolling, ${batch} at a time)${otherVersionWords(other)}`)
  probations.endAll([...cohorts.all()].filter((c) => c !== cohort))
  probations.watch(cohort, previous)
  cohorts.limitDraining()
  status.serving(next)
  if (cohort.workers.size < allSlots.length) host.fill()
  return result
}

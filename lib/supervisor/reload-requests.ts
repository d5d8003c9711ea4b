// When a reload is asked of the supervisor (a signal, the control socket, a worker's reload()), it
// runs now, after the one running, or once the first generation serves; requests made meanwhile
// join the one that waits. The one owner of the reload gate and of those waiting reloads.
import { ReloadGate } from '../reload-result'
import type { ReloadResult } from '../types'
import type { SupervisorLogger } from './options'

export interface ReloadRequestHost {
  log: SupervisorLogger
  /** The first generation's start, while it runs (every slot's), unless we stop. */
  firstStart: () => Promise<void> | undefined
  /** Runs a reload now, or answers at once why none can run (stopping, nothing serving). */
  run: () => { now: () => Promise<ReloadResult> } | { refused: ReloadResult }
}

export class ReloadRequests {
  private readonly gate = new ReloadGate()
  /** The reload that runs once the running one is over. */
  private queued: Promise<ReloadResult> | undefined
  /** The one reload that runs once the first generation serves. */
  private deferred: Promise<ReloadResult> | undefined

  constructor (private readonly host: ReloadRequestHost) {}

  /** A reload runs. */
  get busy (): boolean {
    return this.gate.busy
  }

  /** The reload running, if any. */
  get current (): Promise<ReloadResult> | undefined {
    return this.gate.current
  }

  ask (): Promise<ReloadResult> {
    const { log } = this.host
    if (this.gate.busy) {
      // The running reload's workers may have loaded their code before this request's release
      // landed (a second deploy right after the first): one more reload runs after it, for every
      // request made meanwhile, and answers them.
      if (this.queued !== undefined) {
        log.info({ supervisor: 'reload-coalesced' }, 'supervisor: a reload is already queued; this request joins it')
        return this.queued
      }
      log.info({ supervisor: 'reload-queued' }, 'supervisor: a reload is already running; one more runs after it')
      this.queued = (this.gate.current as Promise<ReloadResult>).catch(() => undefined).then(() => {
        this.queued = undefined
        return this.ask()
      })
      return this.queued
    }
    const firstStart = this.host.firstStart()
    if (firstStart !== undefined) {
      // A deploy may land while the first generation still boots the older code: one reload once it serves.
      if (this.deferred !== undefined) {
        log.info({ supervisor: 'reload-coalesced' }, 'supervisor: a reload is already waiting for the first generation; this request joins it')
        return this.deferred
      }
      log.info({ supervisor: 'reload-deferred' }, 'supervisor: a reload asked while the first generation starts runs once it serves')
      this.deferred = firstStart.then(() => {
        this.deferred = undefined
        return this.ask()
      })
      return this.deferred
    }
    const run = this.host.run()
    if ('refused' in run) return Promise.resolve(run.refused)
    return this.gate.enter(run.now).result
  }
}

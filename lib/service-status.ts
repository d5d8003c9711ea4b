// What the outside world is told about the service: systemd (sd_notify: READY, RELOADING, MAINPID,
// STOPPING, STATUS), the pid file and the record of the last reload beside it. The same words from a
// standalone generation and from the supervisor.
import { removePidFileIfOurs, writePidFile, writeReloadRecord, type ReloadRecord } from './pid-file'
import { toWire } from './reload-result'
import type { Notifier } from './sd-notify'
import type { ReloadResult } from './types'

export interface StatusLogger {
  warn (obj: object | string, msg?: string): void
}

export class ServiceStatus {
  /** The last reload record written, for its rollback (recordRollback). */
  private lastRecord: ReloadRecord | undefined
  /** The service stops: its pid file and record are gone, and nothing writes them again (a reload cancelled by the stop). */
  private stopped = false

  constructor (
    private readonly notify: Notifier | undefined,
    private readonly pidFile: string | undefined,
    private readonly log: StatusLogger
  ) {}

  reloading (next: number): void {
    void this.notify?.({ RELOADING: '1', MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n), STATUS: `reloading into generation ${next}` })
  }

  /** `mainPid` when the serving process is not the one systemd started (a standalone successor). */
  serving (generation: number, mainPid?: number): void {
    void this.notify?.({ ...mainPidOf(mainPid), READY: '1', STATUS: `serving generation ${generation}` })
  }

  resumed (generation: number, reason: string, mainPid?: number): void {
    void this.notify?.({ ...mainPidOf(mainPid), READY: '1', STATUS: `serving generation ${generation} again: ${reason}` })
  }

  reloadFailed (message: string): void {
    void this.notify?.({ READY: '1', STATUS: `reload failed: ${message}` })
  }

  stopping (pid: number): void {
    this.stopped = true
    void this.notify?.({ STOPPING: '1' })
    if (this.pidFile !== undefined) removePidFileIfOurs(this.pidFile, pid)
  }

  /** The pid file names the serving process. */
  servingPid (pid: number): void {
    if (this.pidFile !== undefined && !this.stopped) writePidFile(this.pidFile, pid)
  }

  /** Beside the pid file, for `fastify-hot-reload reload --pid-file` to learn the outcome. */
  recordReload (result: ReloadResult, fromPid: number, probationMs: number): void {
    this.writeRecord({ ...toWire(result), fromPid, finishedAt: Date.now(), probationMs })
  }

  /** The last reload's generation crashed within its probation, and `servesAgain` serves again (why). */
  recordRollback (reason: string, servesAgain: { generation: number, pid: number }): void {
    if (this.lastRecord?.ok === true) this.writeRecord({ ...this.lastRecord, rolledBack: reason, servesAgain })
  }

  private writeRecord (record: ReloadRecord): void {
    if (this.pidFile === undefined || this.stopped) return
    this.lastRecord = record
    try {
      writeReloadRecord(this.pidFile, record)
    } catch (err) {
      this.log.warn({ hotReload: 'reload-record-failed', err }, 'hot-reload: could not write the reload record beside the pid file')
    }
  }
}

function mainPidOf (pid: number | undefined): Record<string, string> {
  return pid === undefined ? {} : { MAINPID: String(pid) }
}

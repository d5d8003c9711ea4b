// One ReloadResult: how it is made (success, failure), how it crosses a channel or a file (the wire
// form), and the gate that lets only one reload run at a time while later asks join it. Shared by a
// standalone generation and the supervisor.
import { hotReloadError, type ErrorCode } from './errors'
import type { HotReloadError, ReloadResult } from './types'

/** A reload result as it crosses the IPC channel, the control socket or the reload record: the error as plain fields. */
export type WireReloadResult = Omit<ReloadResult, 'error'> & { error?: { code: string, message: string } }

/** Who serves while (and if) the reload fails. */
export interface Serving {
  generation: number
  pid: number
}

export function elapsedSince (startedAt: number | undefined): number {
  return startedAt === undefined ? 0 : Math.round(performance.now() - startedAt)
}

/** `bootMs`: the successor's own boot, when it said (durationMs − bootMs is what the reload added). */
export function succeeded (generation: number, pid: number, startedAt: number, bootMs?: number): ReloadResult {
  const result: ReloadResult = { ok: true, generation, pid, durationMs: elapsedSince(startedAt), successorPid: pid }
  if (bootMs !== undefined) result.bootMs = bootMs
  return result
}

export function failed (serving: Serving, startedAt: number | undefined, successorPid: number | undefined, error: HotReloadError): ReloadResult {
  return { ok: false, generation: serving.generation, pid: serving.pid, durationMs: elapsedSince(startedAt), successorPid, error }
}

/** A reload this process can never run (a cluster worker): `why` says so. */
export function unsupported (pid: number, why: string, generation: number): ReloadResult {
  return failed({ generation, pid }, undefined, undefined, hotReloadError('HOT_RELOAD_UNSUPPORTED', why))
}

/** A reload that never started: this process cannot reload now. */
export function notServing (pid: number, why: string, generation = 0): ReloadResult {
  return failed({ generation, pid }, undefined, undefined, hotReloadError('HOT_RELOAD_NOT_SERVING', why))
}

export function toWire (result: ReloadResult): WireReloadResult {
  const { error, ...rest } = result
  return error === undefined ? rest : { ...rest, error: { code: error.code, message: error.message } }
}

export function fromWire (result: WireReloadResult): ReloadResult {
  const { error, ...rest } = result
  if (error === undefined) return rest
  return { ...rest, error: hotReloadError(error.code as ErrorCode, error.message) }
}

/** One reload at a time: a request while one runs joins it (coalesced), never a second spawn. */
export class ReloadGate {
  private running: Promise<ReloadResult> | undefined

  get busy (): boolean {
    return this.running !== undefined
  }

  /** The reload in progress, if any. */
  get current (): Promise<ReloadResult> | undefined {
    return this.running
  }

  /** Starts `run` unless a reload runs; then the caller gets that one's result (`joined` says so). */
  enter (run: () => Promise<ReloadResult>): { result: Promise<ReloadResult>, joined: boolean } {
    if (this.running !== undefined) return { result: this.running, joined: true }
    this.running = run().finally(() => { this.running = undefined })
    return { result: this.running, joined: false }
  }
}

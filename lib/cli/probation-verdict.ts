// `reload --wait-probation`: a reload answers once its new generation serves, but a release that
// crashes within its probation is rolled back afterwards, and the previous generation serves again.
// A deploy script that took the first answer for success would leave its `current` pointing at
// that release (a later restart would start it). This waits the probation out and asks whether the
// generation still serves: the supervisor's status, or the reload record beside a pid file (both
// say `rolledBack`).
import { readReloadRecord } from '../pid-file'
import { requestControl } from '../supervisor/control'

/** Checked this long after the probation, so that a crash at its very end has been handled. */
const VERDICT_MARGIN_MS = 300

type Answer = Record<string, unknown>

/** Where the reload was asked: the supervisor's control socket, or a service's pid file. */
export type VerdictSource = { control: string } | { pidFile: string }

/**
 * `result`: a reload's answer that said ok. Resolves with it once the probation is over, or with a
 * failure (HOT_RELOAD_ROLLED_BACK) naming what serves instead. No probation (0): nothing to wait for.
 */
export async function probationVerdict (source: VerdictSource, result: Answer, timeout: number): Promise<Answer> {
  // Both answers say how long the probation is: the supervisor's, and the reload record.
  const probationMs = Number(result.probationMs)
  if (!(probationMs > 0)) return result
  await new Promise((resolve) => setTimeout(resolve, probationMs + VERDICT_MARGIN_MS))
  const verdict = 'control' in source ? await fromStatus(source.control, result, timeout) : fromRecord(source.pidFile, result)
  if (verdict === undefined) return result
  return {
    ...result,
    ok: false,
    generation: verdict.generation,
    pid: verdict.pid,
    error: { code: 'HOT_RELOAD_ROLLED_BACK', message: `generation ${String(result.generation)} was rolled back within the probation: ${verdict.rolledBack}` }
  }
}

interface RolledBack { rolledBack: string, generation: number, pid: number }

async function fromStatus (control: string, result: Answer, timeout: number): Promise<RolledBack | undefined> {
  const status = await requestControl(control, { command: 'status' }, timeout)
  const last = status.lastReload as { generation?: number, rolledBack?: string } | undefined
  if (last === undefined || last.generation !== result.generation || last.rolledBack === undefined) return undefined
  const serving = (status.workers as Array<{ generation: number, pid: number, state: string }> | undefined)
    ?.find((w) => w.generation === status.generation && w.state === 'serving')
  return { rolledBack: last.rolledBack, generation: Number(status.generation), pid: serving?.pid ?? 0 }
}

/** The same record (its finishedAt), now saying rolledBack and what serves again. */
function fromRecord (pidFile: string, result: Answer): RolledBack | undefined {
  const record = readReloadRecord(pidFile)
  if (record === null || record.finishedAt !== result.finishedAt || record.rolledBack === undefined) return undefined
  return { rolledBack: record.rolledBack, generation: record.servesAgain?.generation ?? 0, pid: record.servesAgain?.pid ?? 0 }
}

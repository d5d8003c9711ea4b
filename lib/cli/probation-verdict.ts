// `reload --wait-probation`: a reload answers once its new generation serves, but a release that
// crashes within the supervisor's probation is rolled back afterwards, and the previous generation
// serves again. A deploy script that took the first answer for success would leave its `current`
// pointing at that release (a later restart would start it). This waits the probation out and
// asks the supervisor's status whether the generation is still the one serving.
import { requestControl } from '../supervisor/control'

/** Checked this long after the probation, so that a crash at its very end has been handled. */
const VERDICT_MARGIN_MS = 300

type Answer = Record<string, unknown>

/**
 * `result`: a reload's answer that said ok. Resolves with it once the probation is over, or with a
 * failure (HOT_RELOAD_ROLLED_BACK) naming what serves instead. A supervisor without a probation
 * (`--probation 0`) has nothing to wait for.
 */
export async function probationVerdict (controlPath: string, result: Answer, timeout: number): Promise<Answer> {
  const before = await requestControl(controlPath, { command: 'status' }, timeout)
  const probationMs = Number(before.probationMs)
  if (!(probationMs > 0)) return result
  await new Promise((resolve) => setTimeout(resolve, probationMs + VERDICT_MARGIN_MS))
  const after = await requestControl(controlPath, { command: 'status' }, timeout)
  const last = after.lastReload as { generation?: number, rolledBack?: string } | undefined
  if (last === undefined || last.generation !== result.generation || last.rolledBack === undefined) return result
  const serving = (after.workers as Array<{ generation: number, pid: number, state: string }> | undefined)
    ?.find((w) => w.generation === after.generation && w.state === 'serving')
  return {
    ...result,
    ok: false,
    generation: after.generation,
    pid: serving?.pid ?? 0,
    error: { code: 'HOT_RELOAD_ROLLED_BACK', message: `generation ${String(result.generation)} was rolled back within the probation: ${last.rolledBack}` }
  }
}

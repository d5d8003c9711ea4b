// A successor's own readiness check, before it accepts a single connection on the shared sockets:
// its readiness route, asked in-process (a request over the shared socket could reach the old
// generation), until it answers 200 or the generation is taken down meanwhile.
import type { FastifyInstance } from 'fastify'

const CHECK_INTERVAL = 100

export interface ReadinessCheck {
  app: FastifyInstance
  /** The readiness route, or false to ask `notReadyReason` directly. */
  healthPath: string | false
  notReadyReason: () => string | null
  /** True once the generation is being taken down: stop checking. */
  givenUp: () => boolean
  /** Told why it is not ready yet, at the first answer and whenever the reason changes. */
  notYet?: (reason: string) => void
}

/** Ready; given up (the generation is taken down meanwhile); or refused, for good, and why. */
export type ReadinessVerdict = { ready: true } | { ready: false, refused?: string }

/** Resolves once ready, once given up, or at once when the answer can never become 200. */
export async function waitUntilReady (check: ReadinessCheck): Promise<ReadinessVerdict> {
  let said: string | undefined
  for (let attempt = 1; ; attempt++) {
    if (check.givenUp()) return { ready: false }
    const answer = await notReadyNow(check)
    if (answer === null) return { ready: true }
    if (answer.refused) return { ready: false, refused: answer.reason }
    if (attempt === 1) check.app.log.warn({ hotReload: 'successor-not-ready', reason: answer.reason }, `hot-reload: not ready yet (${answer.reason}); checking again`)
    if (answer.reason !== said) check.notYet?.(answer.reason)
    said = answer.reason
    await new Promise((resolve) => setTimeout(resolve, CHECK_INTERVAL))
  }
}

// Answers that are not the readiness route's own (it says 200 or 503) and that no retry changes:
// a hook of the app answered instead (401/403 from an auth check, 404 from a rewrite). A 5xx, a 408
// or a 429 may pass (a hook that holds requests back until a database is up, say): checked again.
const TRANSIENT_CLIENT_ERRORS = new Set([408, 425, 429])

async function notReadyNow (check: ReadinessCheck): Promise<{ reason: string, refused: boolean } | null> {
  if (check.healthPath === false) {
    const reason = check.notReadyReason()
    return reason === null ? null : { reason, refused: false }
  }
  const { statusCode, body } = await check.app.inject({ method: 'GET', url: check.healthPath })
  if (statusCode === 200) return null
  if (statusCode >= 400 && statusCode < 500 && !TRANSIENT_CLIENT_ERRORS.has(statusCode)) {
    return {
      reason: `GET ${check.healthPath} answered ${statusCode}, not the readiness route (a hook of the app answered it: an auth check?); ` +
        'let the probe routes through: their route config has hotReloadProbe: true',
      refused: true
    }
  }
  return { reason: `GET ${check.healthPath} answered ${statusCode}${saidWhy(body)}`, refused: false }
}

/** Why the answer's body says it is not ready: the readiness route's `reason` (under-pressure), or an error's `message`. */
function saidWhy (body: string): string {
  let parsed: { reason?: unknown, message?: unknown }
  try {
    parsed = JSON.parse(body) as typeof parsed
  } catch {
    return ''
  }
  const why = typeof parsed?.reason === 'string' ? parsed.reason : parsed?.message
  return typeof why === 'string' && why !== '' ? ` (${why.slice(0, 200)})` : ''
}

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
}

/** Resolves true once ready, false when given up meanwhile. */
export async function waitUntilReady (check: ReadinessCheck): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    if (check.givenUp()) return false
    const reason = await notReadyNow(check)
    if (reason === null) return true
    if (attempt === 1) check.app.log.warn({ hotReload: 'successor-not-ready', reason }, `hot-reload: not ready yet (${reason}); checking again`)
    await new Promise((resolve) => setTimeout(resolve, CHECK_INTERVAL))
  }
}

async function notReadyNow (check: ReadinessCheck): Promise<string | null> {
  if (check.healthPath === false) return check.notReadyReason()
  const response = await check.app.inject({ method: 'GET', url: check.healthPath })
  return response.statusCode === 200 ? null : `GET ${check.healthPath} answered ${response.statusCode}`
}

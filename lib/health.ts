// Readiness (/health: 200 only while this process is the serving generation) and liveness
// (/health/live: 200 while the process works, draining included).
import type { ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import { hotReloadError } from './errors'
import type { ResolvedOptions } from './options'

/** What the probes say of the process's generation. */
interface Identity {
  readonly pid: number
  readonly generation: number
  readonly state: string
}

// Probes must answer even under pressure (@fastify/under-pressure would 503 every route): the
// readiness handler reports pressure itself, and liveness ignores it. Nor are they rate limited
// (@fastify/rate-limit's per-route opt-out): an orchestrator polls them, and a liveness probe
// answered 429 gets the process restarted. `hotReloadProbe` tells the app's own hooks (an auth
// check) which routes to let through.
const probeRoute = { logLevel: 'warn' as const, config: { pressureHandler: () => undefined, rateLimit: false, hotReloadProbe: true } }

/**
 * @param notReadyReason why this instance's readiness must say 503, or null
 * @param closeConnectionAfter during a drain, ends the connection after this response
 */
export function registerHealthRoutes (app: FastifyInstance, notReadyReason: () => string | null, closeConnectionAfter: (response: ServerResponse) => void,
  generation: Identity, options: ResolvedOptions): void {
  const probes = ([['healthPath', options.healthPath], ['livenessPath', options.livenessPath]] as const)
    .flatMap(([option, path]) => path === false ? [] : [{ option, url: probeUrl(app, path) }])
  const taken = (option: string, url: string): Error => hotReloadError('HOT_RELOAD_INVALID_OPTION',
    `fastify-hot-reload: option "${option}": the app has a route GET ${url} too; give the probe another path, or false to have none`)
  for (const { option, url } of probes) if (app.hasRoute({ method: 'GET', url })) throw taken(option, url)
  const identity = () => ({
    pid: generation.pid,
    generation: generation.generation,
    state: generation.state,
    uptime: Math.round(process.uptime())
  })
  if (options.healthPath !== false) {
    app.get(options.healthPath, probeRoute, async (_request, reply) => {
      const reason = notReadyReason()
      reply.code(reason === null ? 200 : 503)
      if (reason !== null) reply.header('retry-after', '1')
      // A checker that keeps its connection (Envoy) asks again on a new one, which the serving generation accepts.
      if (reason === 'draining') closeConnectionAfter(reply.raw)
      return reason === null
        ? { status: 'ok', ready: true, ...identity() }
        : { status: 'unavailable', ready: false, reason, ...identity() }
    })
  }
  if (options.livenessPath !== false) {
    app.get(options.livenessPath, probeRoute, async () => ({ status: 'ok', live: true, ...identity() }))
  }
  // A route the app adds later at a probe's path (a plugin registered after this one): the same
  // error, not Fastify's duplicate-route one, which does not say which option to change.
  app.addHook('onRoute', (route) => {
    if (![route.method].flat().includes('GET')) return
    const probe = probes.find(({ url }) => url === route.url)
    if (probe !== undefined) throw taken(probe.option, probe.url)
  })
}

/**
 * Where a probe route answers: under the prefix of the context the plugin was registered in
 * (`app.register(async (api) => { api.register(hotReload) }, { prefix: '/api' })` gives /api/health).
 */
export function probeUrl (app: FastifyInstance, path: string): string {
  return `${app.prefix ?? ''}${path}`
}

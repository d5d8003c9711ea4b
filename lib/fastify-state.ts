// Fastify 5's own state, read where its public API says nothing: whether listen() ran, and whether
// a ready() is under way. Undefined answers where the state is not where Fastify 5 keeps it.
import type { FastifyInstance } from 'fastify'

/** The root instance, which holds Fastify's state (an encapsulated context inherits it), and that state. */
function rootState (app: FastifyInstance): { root: FastifyInstance, state: Record<string, unknown> | undefined } | undefined {
  for (let object: object | null = app; object !== null; object = Object.getPrototypeOf(object) as object | null) {
    const key = Object.getOwnPropertySymbols(object).find((symbol) => symbol.description === 'fastify.state')
    if (key !== undefined) return { root: object as FastifyInstance, state: (object as Record<symbol, Record<string, unknown> | undefined>)[key] }
  }
  return undefined
}

/**
 * Whether Fastify's own listen() has run for this instance: its internal state says so (set before
 * it runs the onListen hooks, never by a listen on app.server).
 */
export function fastifyListened (app: FastifyInstance): boolean | undefined {
  const listening = rootState(app)?.state?.listening
  return typeof listening === 'boolean' ? listening : undefined
}

/**
 * The boot under way, as the promise every ready() shares, while a ready() (listen() calls one)
 * loads the plugins; undefined otherwise. Asking ready() then starts nothing. An `await
 * app.register()` loads plugins without one, and a ready() of ours would start the boot early.
 */
export function bootUnderWay (app: FastifyInstance): PromiseLike<unknown> | undefined {
  const found = rootState(app)
  // readyResolver in later Fastify 5 releases, readyPromise in the first ones.
  const underWay = found !== undefined && (found.state?.readyResolver ?? found.state?.readyPromise ?? null) !== null
  // The root's own ready(): a plugin's context has avvio's, which is about that plugin alone.
  return underWay ? found.root.ready() : undefined
}

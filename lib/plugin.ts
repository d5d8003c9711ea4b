// The Fastify plugin: validates options, takes what the boot found (a handoff, socket activation),
// and wires one generation into the app's lifecycle.
import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { boot } from './boot'
import { crashCause } from './crash-report'
import { hotReloadError } from './errors'
import { HotReloadFacade } from './facade'
import { Generation } from './generation'
import { registerHealthRoutes } from './health'
import { keepPidAtListen } from './keep-pid'
import { limitDrain, resolveOptions } from './options'
import { fastifyCliCloseGraceMs } from './fastify-cli'
import { bootUnderWay, fastifyListened } from './fastify-state'
import { CLOSE_GRACE_MS } from './handover'
import { describeSignalsBlocked, signalsBlockedHere } from './signal-path'
import type { HotReloadOptions } from './types'

// Read once, at load: an abort that comes while the app still boots must end a successor at once.
const booted = boot()
/**
 * The generation of this process while some instance is open: one per process, however many
 * Fastify instances register the plugin (an app and an admin server share its reloads, its
 * successor and its drain). The first registration's process-wide options are the generation's.
 */
let active: Generation | undefined

const hotReloadPlugin: FastifyPluginAsync<HotReloadOptions> = async (app: FastifyInstance, rawOptions) => {
  const asked = resolveOptions(rawOptions)
  const options = limitDrain(asked, booted.handoff?.drainTimeout)
  const { parent, mode } = booted
  if (booted.error !== undefined) {
    await parent?.failed(booted.error.message)
    throw booted.error
  }
  const refusal = mode.refusal(parent)
  if (refusal !== undefined) throw refusal
  // A successor's boot that fails from here on (a plugin of the app throws: its database is not
  // there; its listen() on a port another process holds) mostly ends by the app's own hand, as
  // Fastify's docs show: logged, then process.exit(1). The parent hears why first, for the reload's failure.
  if (parent !== undefined) reportBootFailure(app, (err) => { parent.bootFailed(crashCause(err)) })
  if (app.hasDecorator('hotReload')) {
    throw hotReloadError('HOT_RELOAD_ALREADY_REGISTERED',
      'fastify-hot-reload: already registered on this Fastify instance; register it once per instance')
  }
  // Said once, by the supervisor's first worker: every worker has the same bound.
  if (options.drainTimeout < asked.drainTimeout && firstWorker()) {
    app.log.info({ hotReload: 'drain-limited', drainTimeout: options.drainTimeout, closeSpread: options.closeSpread, asked: asked.drainTimeout },
      `hot-reload: drains take at most ${options.drainTimeout} ms here, the supervisor's --drain-timeout (drainTimeout asks ${asked.drainTimeout})`)
  }
  // The process's first registration decides whether the process becomes its own supervisor.
  const keepingPid = active === undefined ? keepPidAtListen(app, booted, options, () => active?.reloadDeferred === true) : undefined
  if (active === undefined) warnAtStart(app, options.drainTimeout, keepingPid?.keeping === true)
  const stopKeepingPid = keepingPid?.stop ?? (() => {})
  const generation: Generation = active ?? new Generation({
    options,
    log: app.log,
    generation: booted.handoff?.generation ?? 1,
    inherited: booted.takeInheritance(),
    reusePort: booted.handoff?.reusePort,
    expectedInstances: booted.handoff?.instances ?? 1,
    parent,
    launch: booted.launch,
    mode,
    port: booted.port,
    env: booted.launch.env
  })
  active = generation
  const facade = new HotReloadFacade(() => generation)
  const instance = generation.attach(app, options, facade)
  // A supervised worker's every log line says which generation and slot it is (--workers).
  const slot = booted.handoff?.slot
  if (slot !== undefined) (app.log as { setBindings?: (bindings: object) => void }).setBindings?.({ generation: generation.generation, slot })
  const close = (): void => {
    stopKeepingPid()
    generation.onClose(instance)
    if (active === generation && !generation.open) active = undefined
  }
  app.addHook('onClose', async () => { close() })
  try {
    app.decorate('hotReload', facade)
    if (options.underPressure !== false) {
      // The app's own under-pressure is what /health reports then: ours would not register (its
      // decorators are taken), and its thresholds would be dropped without a word.
      if (app.hasDecorator('isUnderPressure')) {
        throw hotReloadError('HOT_RELOAD_INVALID_OPTION',
          'fastify-hot-reload: option "underPressure": the app registers @fastify/under-pressure itself, and /health reports its verdict; ' +
          'leave "underPressure" out of fastify-hot-reload\'s options and set the thresholds in the app\'s own registration')
      }
      await app.register(underPressure, options.underPressure)
    }
    registerHealthRoutes(app, () => generation.notReadyReason(instance), (response) => instance.closeConnectionAfter(response), generation, options)
    let onListenRan = false
    app.addHook('onListen', async () => {
      onListenRan = true
      await generation.onListen(instance)
    })
    warnIfListenBypassed(app, () => onListenRan || !generation.open)
  } catch (error) {
    close()
    throw error
  }
}

/**
 * Calls `report` with what the app's boot failed with: its ready(), or the listen() after it (the
 * server's 'error', which Fastify turns into listen()'s rejection; watched only until it listens).
 */
function reportBootFailure (app: FastifyInstance, report: (err: unknown) => void): void {
  bootUnderWay(app)?.then(undefined, report)
  app.addHook('onReady', async () => {
    const stopWatching = (): void => { app.server.off('error', report) }
    app.server.once('error', report)
    app.server.once('listening', stopWatching)
  })
}

/** How long after the server listens Fastify's onListen hooks (ours among them) must have begun. */
const ON_LISTEN_GRACE_MS = 2000

/**
 * An app that listens with `app.server.listen()` (after `app.ready()`) instead of `app.listen()`
 * never runs Fastify's onListen hooks, where this plugin starts serving: /health would say
 * `starting` for ever and reloads would wait. Said once, with what to do instead.
 */
function warnIfListenBypassed (app: FastifyInstance, fine: () => boolean): void {
  app.server.once('listening', () => {
    setTimeout(() => {
      // Fastify's listen() ran, and an onListen hook of the app before ours takes its time.
      if (fine() || fastifyListened(app) === true) return
      app.log.warn({ hotReload: 'listen-bypassed' },
        'hot-reload: the server listens, but Fastify\'s onListen hooks have not run: was app.server.listen() called instead of app.listen()? ' +
        'This plugin starts serving (readiness, reloads) when Fastify listens; /health answers 503 until then. Call app.listen()')
    }, ON_LISTEN_GRACE_MS).unref()
  })
}

/** This process is the first generation's first worker (or successor): what every worker would say, it says for all. */
function firstWorker (): boolean {
  return booted.handoff !== null && booted.handoff.generation === 1 && (booted.handoff.slot ?? 0) === 0
}

/** Said once, at the process's first registration: what will not work the way the user expects. */
function warnAtStart (app: FastifyInstance, drainTimeout: number, becomesSupervisor: boolean): void {
  // The process the user started (not a successor or a worker): can its signals reach it?
  const blocked = booted.handoff === null ? signalsBlockedHere() : undefined
  if (blocked !== undefined) app.log.warn({ hotReload: 'signals-blocked', ...blocked }, `hot-reload: ${describeSignalsBlocked(blocked)}`)
  // fastify-cli ends the process on its own clock at SIGTERM/SIGINT; a supervisor's workers run its
  // command line too (said by the first worker, not by every generation, nor by a process that
  // becomes the supervisor: its first worker says it).
  const first = booted.handoff === null ? !becomesSupervisor : firstWorker()
  const grace = first ? fastifyCliCloseGraceMs(booted.launch.args, process.env) : undefined
  const needed = drainTimeout + CLOSE_GRACE_MS
  if (grace !== undefined && grace < needed) {
    app.log.warn({ hotReload: 'close-grace-short', closeGraceDelay: grace, needed },
      `hot-reload: fastify-cli exits ${grace} ms after SIGTERM/SIGINT (--close-grace-delay): requests still running then and the app's onClose hooks are cut. ` +
      `Start it with --close-grace-delay ${needed} (drainTimeout + ${CLOSE_GRACE_MS} ms) or more`)
  }
  // A cluster worker: said at start, not only when a reload is refused.
  const unsupported = booted.mode.reloadUnsupported
  if (unsupported !== undefined) {
    app.log.warn({ hotReload: 'reload-unsupported', mode: booted.mode.name, reason: unsupported },
      `hot-reload: no reloads in this process: ${unsupported}. Readiness (/health) and the graceful drain at SIGTERM/SIGINT work as usual`)
  }
}

export const hotReload = fp(hotReloadPlugin, { name: 'fastify-hot-reload', fastify: '5.x' })

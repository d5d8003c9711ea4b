// The Fastify plugin: validates options, reads the handoff a previous generation left us, and
// wires the generation controller into the app's lifecycle.
import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { Controller } from './controller'
import { hotReloadError } from './errors'
import { clearHandoffEnv, readHandoff, type Handoff, type InheritedSocket } from './handoff-env'
import { registerHealthRoutes } from './health'
import { captureLaunch } from './launch'
import { resolveOptions } from './options'
import { ParentLink } from './parent-link'
import { readSocketActivation } from './socket-activation'
import type { HotReloadOptions } from './types'

// Read once, at load: the environment is cleared so that the app's own children never see it.
const launch = captureLaunch()
let handoff: Handoff | null = null
let activated: InheritedSocket[] | null = null
let handoffError: Error | undefined
try {
  handoff = readHandoff(process.env)
  // No handoff from a previous generation: maybe systemd socket activation.
  if (handoff === null) activated = readSocketActivation(process.env)
} catch (error) {
  handoffError = error as Error
}
if (handoff !== null || activated !== null || handoffError !== undefined) clearHandoffEnv(process.env)
// Connect early: an abort that comes while the app is still booting ends a successor at once.
const parent = handoff === null ? undefined : ParentLink.connect(handoff.supervised)
let unclaimedInheritance: InheritedSocket[] = handoff?.sockets ?? activated ?? []

function takeInheritance (): InheritedSocket[] {
  const sockets = unclaimedInheritance
  unclaimedInheritance = []
  return sockets
}

const hotReloadPlugin: FastifyPluginAsync<HotReloadOptions> = async (app: FastifyInstance, rawOptions) => {
  const options = resolveOptions(rawOptions)
  if (handoffError !== undefined) {
    parent?.failed(handoffError.message)
    throw handoffError
  }
  // A worker never serves on the supervisor's sockets by itself: no one would reload or stop it.
  if (handoff?.supervised === true && (parent === undefined || !process.connected)) {
    throw hotReloadError('HOT_RELOAD_SUPERVISOR_GONE',
      `fastify-hot-reload: this worker was started by a supervisor (pid ${handoff.parentPid}) that is gone; not serving`)
  }
  const controller = new Controller(app, options, {
    generation: handoff?.generation ?? 1,
    supervised: handoff?.supervised ?? false,
    inherited: takeInheritance(),
    parent,
    launch
  })
  app.decorate('hotReload', controller)
  if (options.underPressure !== false && !app.hasDecorator('isUnderPressure')) {
    await app.register(underPressure, options.underPressure)
  }
  registerHealthRoutes(app, controller, options)
  app.addHook('onListen', async () => { await controller.onListen() })
  app.addHook('onClose', async () => { controller.onClose() })
}

export const hotReload = fp(hotReloadPlugin, { name: 'fastify-hot-reload', fastify: '5.x' })

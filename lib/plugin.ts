// The Fastify plugin: validates options, takes what the boot found (a handoff, socket activation),
// and wires one generation into the app's lifecycle.
import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { boot } from './boot'
import { hotReloadError } from './errors'
import { HotReloadFacade } from './facade'
import { Generation } from './generation'
import { registerHealthRoutes } from './health'
import { keepPidAtListen } from './keep-pid'
import { resolveOptions } from './options'
import type { HotReloadOptions } from './types'

// Read once, at load: an abort that comes while the app still boots must end a successor at once.
const booted = boot()
/** The generation of this process while its app is open: one per process. */
let active: Generation | undefined

const hotReloadPlugin: FastifyPluginAsync<HotReloadOptions> = async (app: FastifyInstance, rawOptions) => {
  const options = resolveOptions(rawOptions)
  const { parent, mode } = booted
  if (booted.error !== undefined) {
    parent?.failed(booted.error.message)
    throw booted.error
  }
  const refusal = mode.refusal(parent)
  if (refusal !== undefined) throw refusal
  if (active !== undefined) {
    throw hotReloadError('HOT_RELOAD_ALREADY_REGISTERED',
      `fastify-hot-reload: already registered on another open Fastify instance in this process (generation ${active.generation}); one instance per process`)
  }
  const stopKeepingPid = keepPidAtListen(app, booted, options)
  const facade = new HotReloadFacade(() => generation)
  const generation: Generation = new Generation({
    app,
    options,
    generation: booted.handoff?.generation ?? 1,
    inherited: booted.takeInheritance(),
    parent,
    launch: booted.launch,
    mode,
    port: booted.port,
    events: facade,
    env: booted.launch.env
  })
  active = generation
  app.addHook('onClose', async () => {
    stopKeepingPid()
    generation.onClose()
    if (active === generation) active = undefined
  })
  try {
    app.decorate('hotReload', facade)
    if (options.underPressure !== false && !app.hasDecorator('isUnderPressure')) {
      await app.register(underPressure, options.underPressure)
    }
    registerHealthRoutes(app, generation, options)
    app.addHook('onListen', async () => { await generation.onListen() })
  } catch (error) {
    stopKeepingPid()
    active = undefined
    throw error
  }
}

export const hotReload = fp(hotReloadPlugin, { name: 'fastify-hot-reload', fastify: '5.x' })

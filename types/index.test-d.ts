import Fastify from 'fastify'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import hotReload, {
  type DrainResult, type HotReloadController, type HotReloadOptions, type HotReloadState, type ReloadResult, type UpgradeDrainingInfo
} from '..'

const app = Fastify()

// Registration
app.register(hotReload)
app.register(hotReload, {})
app.register(hotReload, { reloadSignals: ['SIGUSR2'], readyTimeout: 1000, healthPath: false, successor: { env: { A: 'b' } } })
app.register(hotReload, {
  reloadSignals: ['SIGUSR2', 'SIGHUP'],
  readyTimeout: 10_000,
  drainTimeout: 20_000,
  idleGrace: 500,
  healthPath: '/ready',
  livenessPath: '/live',
  underPressure: { maxEventLoopDelay: 1000 },
  gracefulShutdown: false,
  successor: { execPath: '/usr/bin/node', execArgv: [], args: ['app.js'], env: { A: 'b', B: undefined }, cwd: '/srv/current' },
  pidFile: '/run/app.pid',
  connectionHandoff: true,
  probation: 0,
  maxDrainingGenerations: 3,
  closeSpread: 10_000
})
app.register(hotReload, { prefix: '/api' })

const options: HotReloadOptions = { readyTimeout: 1000, livenessPath: false, underPressure: false }
app.register(hotReload, options)
expectAssignable<HotReloadOptions>({ underPressure: false })
expectNotAssignable<HotReloadOptions>({ readyTimeout: 'x' })
expectNotAssignable<HotReloadOptions>({ healthPath: 1 })
expectNotAssignable<HotReloadOptions>({ healthPath: true })
expectNotAssignable<HotReloadOptions>({ successor: { env: { A: 1 } } })

expectError(app.register(hotReload, { readyTimeout: 'x' }))
expectError(app.register(hotReload, { healthPath: 1 }))
expectError(app.register(hotReload, { drainTimeout: '5s' }))
expectError(app.register(hotReload, { gracefulShutdown: 'yes' }))
expectError(app.register(hotReload, { reloadSignals: 'SIGUSR2' }))
expectError(app.register(hotReload, { successor: { env: { A: 1 } } }))
expectError(app.register(hotReload, { successor: { args: 'app.js' } }))

// The decorator
expectType<HotReloadController>(app.hotReload)
expectType<Promise<ReloadResult>>(app.hotReload.reload())
expectType<number>(app.hotReload.generation)
expectType<number>(app.hotReload.pid)
expectType<HotReloadState>(app.hotReload.state)
expectType<'starting' | 'serving' | 'reloading' | 'draining' | 'closed'>(app.hotReload.state)
expectError(app.hotReload.generation = 2)

// What a reload returns
app.hotReload.reload().then((result) => {
  expectType<boolean>(result.ok)
  expectType<number>(result.generation)
  expectType<number>(result.pid)
  expectType<number>(result.durationMs)
  expectType<number | undefined>(result.successorPid)
  expectType<string | undefined>(result.error?.code)
})

// Events
app.hotReload.on('reloaded', (r) => expectType<ReloadResult>(r))
app.hotReload.on('reloadFailed', (r) => expectType<ReloadResult>(r))
app.hotReload.on('drained', (d) => expectType<number>(d.cutConnections))
app.hotReload.on('drained', (d) => {
  expectType<DrainResult>(d)
  expectType<number>(d.movedConnections)
  expectType<'reload' | 'shutdown'>(d.reason)
})
app.hotReload.on('state', (state, previous) => {
  expectType<HotReloadState>(state)
  expectType<HotReloadState>(previous)
})
app.hotReload.on('draining', (info) => expectType<'reload' | 'shutdown'>(info.reason))
app.hotReload.on('serving', (info) => expectType<{ generation: number, pid: number }>(info))
app.hotReload.on('resumed', (info) => {
  expectType<number>(info.successorPid)
  expectType<string>(info.reason)
})
expectError(app.register(hotReload, { probation: '2s' }))
expectError(app.register(hotReload, { closeSpread: '10s' }))
expectAssignable<HotReloadOptions>({ closeSpread: 0 })
expectNotAssignable<HotReloadOptions>({ closeSpread: true })
// Another upgraded protocol, closed the app's way
app.hotReload.on('upgradeDraining', (info) => {
  expectType<UpgradeDrainingInfo>(info)
  expectType<Duplex>(info.socket)
  expectType<IncomingMessage>(info.request)
  expectType<number>(info.timeLeft)
})
expectError(app.hotReload.on('upgradeDraining', (info: { timeLeft: string }) => info))
expectError(app.hotReload.on('no-such-event', () => {}))
expectError(app.hotReload.on('drained', (d: string) => d))

// CommonJS consumers get the plugin itself, also as .default and .hotReload.
import cjs = require('..')
expectType<typeof hotReload>(cjs.default)

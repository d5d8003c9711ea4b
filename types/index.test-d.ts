import Fastify, { type FastifyPluginAsync } from 'fastify'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import hotReload, {
  hotReload as namedHotReload,
  type DrainResult, type HotReloadController, type HotReloadError, type HotReloadEvents, type HotReloadOptions,
  type HotReloadState, type ReloadResult, type ReloadSignal, type SuccessorOptions, type UnderPressureOptions, type UpgradeDrainingInfo
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
  bootNice: 5,
  maxDrainingGenerations: 3,
  closeSpread: 10_000,
  keepPid: false
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
// What registration refuses at run time: a stop signal, a signal the system sends unasked, an option
// under-pressure does not have (a typo), a threshold that is not a number.
expectError(app.register(hotReload, { reloadSignals: ['SIGTERM'] }))
expectError(app.register(hotReload, { reloadSignals: ['SIGCHLD'] }))
expectAssignable<ReloadSignal[]>(['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT', 'SIGALRM', 'SIGPWR'])
expectError(app.register(hotReload, { underPressure: { maxEventLoopDely: 1000 } }))
expectError(app.register(hotReload, { underPressure: { maxHeapUsedBytes: '1GB' } }))
expectError(app.register(hotReload, { underPressure: { eventLoopUtilizationMode: 'average' } }))
expectAssignable<UnderPressureOptions>({ healthCheck: async () => true, healthCheckInterval: 500, exposeStatusRoute: '/status', retryAfter: 5 })
// An option read from the environment may be undefined: the default, even under exactOptionalPropertyTypes.
declare const fromEnv: string | undefined
expectAssignable<HotReloadOptions>({ pidFile: fromEnv, healthPath: fromEnv, successor: { cwd: fromEnv }, underPressure: { maxRssBytes: undefined } })

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
  expectType<number | undefined>(result.bootMs)
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
  expectType<number | undefined>(info.successorPid)
  expectType<string>(info.reason)
})
expectError(app.register(hotReload, { probation: '2s' }))
expectError(app.register(hotReload, { closeSpread: '10s' }))
expectError(app.register(hotReload, { bootNice: 'low' }))
expectAssignable<HotReloadOptions>({ closeSpread: 0 })
expectNotAssignable<HotReloadOptions>({ closeSpread: true })
expectAssignable<HotReloadOptions>({ keepPid: true })
expectNotAssignable<HotReloadOptions>({ keepPid: 'yes' })
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

// Every public type is importable by name.
expectAssignable<SuccessorOptions>({ execPath: '/usr/bin/node', args: ['app.js'], env: { A: undefined } })
expectNotAssignable<SuccessorOptions>({ args: 'app.js' })
expectAssignable<UnderPressureOptions>({ maxEventLoopDelay: 1000 })
expectAssignable<HotReloadOptions['underPressure']>(false)
declare const failure: HotReloadError
expectType<string>(failure.code)
expectAssignable<Error>(failure)
expectType<[result: ReloadResult]>(([] as unknown) as HotReloadEvents['reloaded'])
expectType<[result: DrainResult]>(([] as unknown) as HotReloadEvents['drained'])

// CommonJS consumers (`import x = require()`) get the plugin itself, also as .default and .hotReload,
// with the public types on the same name: the declarations say `export =`, as the runtime does.
import cjs = require('..')
expectType<typeof hotReload>(cjs)
expectType<FastifyPluginAsync<HotReloadOptions>>(cjs.default)
expectType<FastifyPluginAsync<HotReloadOptions>>(cjs.hotReload)
expectType<FastifyPluginAsync<HotReloadOptions>>(namedHotReload)
expectAssignable<FastifyPluginAsync<HotReloadOptions>>(hotReload)
app.register(cjs, { readyTimeout: 1000 })
app.register(cjs.default, { readyTimeout: 1000 })
app.register(namedHotReload, { readyTimeout: 1000 })
expectError(app.register(cjs.hotReload, { readyTimeout: 'x' }))
const viaNamespace: cjs.HotReloadOptions = { drainTimeout: 1000 }
expectType<HotReloadOptions>(viaNamespace)
expectType<HotReloadController>(({} as unknown) as cjs.HotReloadController)
expectType<HotReloadState>(({} as unknown) as cjs.HotReloadState)
expectType<ReloadResult>(({} as unknown) as cjs.ReloadResult)
expectType<DrainResult>(({} as unknown) as cjs.DrainResult)
expectType<HotReloadError>(({} as unknown) as cjs.HotReloadError)
expectType<HotReloadEvents>(({} as unknown) as cjs.HotReloadEvents)
expectType<SuccessorOptions>(({} as unknown) as cjs.SuccessorOptions)
expectType<UnderPressureOptions>(({} as unknown) as cjs.UnderPressureOptions)

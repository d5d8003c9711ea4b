import Fastify from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import hotReload, {
  type DrainResult, type HotReloadController, type HotReloadOptions, type HotReloadState, type ReloadResult
} from '..'

const app = Fastify()

app.register(hotReload)
app.register(hotReload, {
  reloadSignals: ['SIGUSR2', 'SIGHUP'],
  readyTimeout: 10_000,
  drainTimeout: 20_000,
  idleGrace: 500,
  healthPath: false,
  livenessPath: '/live',
  underPressure: { maxEventLoopDelay: 1000 },
  gracefulShutdown: false,
  successor: { execPath: '/usr/bin/node', execArgv: [], args: ['app.js'], env: { A: 'b', B: undefined }, cwd: '/srv/current' }
})
expectAssignable<HotReloadOptions>({ underPressure: false })

expectError(app.register(hotReload, { readyTimeout: '5s' }))
expectError(app.register(hotReload, { healthPath: 1 }))
expectError(app.register(hotReload, { successor: { env: { A: 1 } } }))

expectType<HotReloadController>(app.hotReload)
expectType<Promise<ReloadResult>>(app.hotReload.reload())
expectType<number>(app.hotReload.generation)
expectType<number>(app.hotReload.pid)
expectType<HotReloadState>(app.hotReload.state)
expectAssignable<'starting' | 'serving' | 'reloading' | 'draining' | 'closed'>(app.hotReload.state)

app.hotReload.on('reloaded', (result) => {
  expectType<ReloadResult>(result)
  expectType<boolean>(result.ok)
  expectType<string | undefined>(result.error?.code)
})
app.hotReload.on('drained', (result) => {
  expectType<DrainResult>(result)
  expectType<number>(result.cutConnections)
})
app.hotReload.on('state', (state, previous) => {
  expectType<HotReloadState>(state)
  expectType<HotReloadState>(previous)
})
expectError(app.hotReload.on('no-such-event', () => {}))

// CommonJS consumers get the plugin itself, also as .default and .hotReload.
import cjs = require('..')
expectType<typeof hotReload>(cjs.default)

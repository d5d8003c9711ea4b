// fastify-hot-reload: zero-downtime reload of a running Fastify v5 service.
//
// A CommonJS package, typed the way Fastify's own plugins are: `export =` of the plugin, merged with a
// namespace that carries the public types. So the declarations say what require() really returns, and
// every module setting sees the same thing: `import hotReload from` (ESM, or CommonJS with
// esModuleInterop), `import { hotReload } from`, `import hotReload = require()`, `require().default`.
import { hotReload as plugin } from './lib/plugin'
import type * as types from './lib/types'

// require('fastify-hot-reload') is the plugin itself, also as .default and .hotReload.
const hotReload = Object.assign(plugin, { default: plugin, hotReload: plugin })

// Types only (it emits no code), merged into what `export =` exports: `import { type HotReloadOptions }`.
declare namespace hotReload {
  export type DrainResult = types.DrainResult
  export type HotReloadController = types.HotReloadController
  export type HotReloadError = types.HotReloadError
  export type HotReloadEvents = types.HotReloadEvents
  export type HotReloadOptions = types.HotReloadOptions
  export type HotReloadState = types.HotReloadState
  export type ReloadResult = types.ReloadResult
  export type ReloadSignal = types.ReloadSignal
  export type SuccessorOptions = types.SuccessorOptions
  export type UnderPressureOptions = types.UnderPressureOptions
  export type UpgradeDrainingInfo = types.UpgradeDrainingInfo
}

export = hotReload

// For Node's ESM loader, which learns a CommonJS module's named exports (`import { hotReload } from`)
// by reading assignments like these two with cjs-module-lexer, then takes their values from the final
// module.exports (the plugin above, which has both). tsc emits `module.exports = hotReload` after them.
exports.default = hotReload
exports.hotReload = hotReload

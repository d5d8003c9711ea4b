// fastify-hot-reload: zero-downtime reload of a running Fastify v5 service.
import { hotReload } from './lib/plugin'

export type {
  DrainResult, HotReloadController, HotReloadError, HotReloadEvents, HotReloadOptions, HotReloadState,
  ReloadResult, SuccessorOptions, UnderPressureOptions, UpgradeDrainingInfo
} from './lib/types'
export { hotReload }
export default hotReload

// require('fastify-hot-reload') is the plugin itself (also as .default and .hotReload), as with
// other Fastify plugins; `import hotReload from` works in ESM through Node's CommonJS interop.
module.exports = Object.assign(hotReload, { default: hotReload, hotReload })

// `fastify.hotReload`: exactly the documented members (reload, generation, state, pid and the
// events), over the generation that does the work. Nothing else of it is reachable from the app.
import { EventEmitter } from 'node:events'
import type { HotReloadController, HotReloadEvents, HotReloadState, ReloadResult } from './types'

interface Core {
  readonly generation: number
  readonly state: HotReloadState
  readonly pid: number
  reload (): Promise<ReloadResult>
}

export class HotReloadFacade extends EventEmitter<HotReloadEvents> implements HotReloadController {
  readonly #core: () => Core

  /** @param core the generation this facade speaks for (a getter: the generation emits through the facade, so it comes second) */
  constructor (core: () => Core) {
    super()
    this.#core = core
  }

  reload (): Promise<ReloadResult> {
    return this.#core().reload()
  }

  get generation (): number { return this.#core().generation }
  get state (): HotReloadState { return this.#core().state }
  get pid (): number { return this.#core().pid }
}

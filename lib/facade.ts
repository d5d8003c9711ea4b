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

/** Where a generation's events go: the facade of every Fastify instance of the process. */
export class Audience {
  private readonly facades = new Set<EventEmitter<HotReloadEvents>>()

  add (facade: EventEmitter<HotReloadEvents>): void { this.facades.add(facade) }
  delete (facade: EventEmitter<HotReloadEvents>): void { this.facades.delete(facade) }

  emit<E extends keyof HotReloadEvents> (event: E, ...args: HotReloadEvents[E]): void {
    for (const facade of [...this.facades]) (facade.emit as (event: E, ...args: HotReloadEvents[E]) => boolean)(event, ...args)
  }

  listenerCount (event: keyof HotReloadEvents): number {
    let count = 0
    for (const facade of this.facades) count += facade.listenerCount(event)
    return count
  }
}

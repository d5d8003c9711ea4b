// A worker covering another slot (supervised, a socket per slot): while slot i has no serving
// worker, the supervisor sends us a copy of slot i's listening socket, and we accept on it too,
// feeding each connection to our own HTTP server as if our socket had accepted it (as a connection
// handed over is served). When slot i serves again we close our copy: the supervisor still holds
// the socket, so nothing queued on it is reset; the slot's new worker accepts what is left.
import { createServer, type Server, type Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'

interface Cover {
  server: Server
  since: number
  /** Connections accepted on the copy. */
  accepted: number
}

export class SlotCovers {
  /** Every copy we accept on, by slot (one per address of the slot). */
  private readonly covers = new Map<number, Cover[]>()

  constructor (private readonly log: FastifyBaseLogger) {}

  /** Accept on `handle` (a listening socket of `slot`) into `target` until uncover(). */
  cover (slot: number, listener: string, handle: object, target: Server): void {
    const cover: Cover = { server: createServer(), since: Date.now(), accepted: 0 }
    // The app's server runs its own 'connection' handling (HTTP parser, our tracker) on it.
    cover.server.on('connection', (socket: Socket) => {
      cover.accepted++
      target.emit('connection', socket)
    })
    cover.server.on('error', (err) => {
      this.log.warn({ hotReload: 'cover-failed', slot, err: err.message }, `hot-reload: could not accept on slot ${slot}'s socket`)
      cover.server.close()
    })
    cover.server.listen(handle)
    const list = this.covers.get(slot) ?? []
    list.push(cover)
    this.covers.set(slot, list)
    this.log.info({ hotReload: 'slot-covered', slot, listener }, `hot-reload: accepting on slot ${slot}'s socket ${listener} while it has no worker`)
  }

  /** Slot `slot` serves again: our copies close (only ours: the kernel socket stays open). */
  uncover (slot: number): void {
    const list = this.covers.get(slot)
    if (list === undefined) return
    this.covers.delete(slot)
    const accepted = list.reduce((sum, cover) => sum + cover.accepted, 0)
    for (const cover of list) if (cover.server.listening) cover.server.close()
    this.log.info({ hotReload: 'slot-uncovered', slot, connections: accepted, durationMs: Date.now() - list[0].since },
      `hot-reload: slot ${slot} serves again; stopped accepting on its socket after ${accepted} connections`)
  }

  /** We stop accepting (a drain): every copy closes. */
  closeAll (): void {
    for (const slot of [...this.covers.keys()]) this.uncover(slot)
  }
}

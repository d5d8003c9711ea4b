// A process-wide hook on net.Server#listen, installed only while some plugin instance needs it.
// Fastify binds its extra servers (listen on 'localhost' → one server per address) internally, so
// the prototype is the one place where a successor can make them adopt inherited sockets.
import { Server } from 'node:net'
import { markAppBooted } from './boot-clock'

type ListenArgs = unknown[]
type Listen = (this: Server, ...args: ListenArgs) => Server

/** Returns true when it took care of the listen() call itself. */
export type ListenHook = (server: Server, args: ListenArgs, listen: (args: ListenArgs) => void) => boolean

const hooks = new Set<ListenHook>()
let original: Listen | undefined

function interceptedListen (this: Server, ...args: ListenArgs): Server {
  markAppBooted()
  const listen = (replacement: ListenArgs): void => { (original as Listen).apply(this, replacement) }
  for (const hook of hooks) {
    if (hook(this, args, listen)) return this
  }
  return (original as Listen).apply(this, args)
}

export function addListenHook (hook: ListenHook): () => void {
  if (original === undefined) {
    original = Server.prototype.listen as Listen
    Server.prototype.listen = interceptedListen as typeof Server.prototype.listen
  }
  hooks.add(hook)
  return () => {
    hooks.delete(hook)
    if (hooks.size === 0 && original !== undefined) {
      Server.prototype.listen = original as typeof Server.prototype.listen
      original = undefined
    }
  }
}

// Pure rules for a process with several Fastify instances (a public app and an admin server, say):
// when a successor has taken over every inherited socket, and which sockets (from how many
// instances) the next successor inherits.
//
// How a successor knows that "every instance" is done: the handoff says how many instances the
// previous generation had (FASTIFY_HOT_RELOAD_INSTANCES, 1 when not said, as from an older
// release). The inherited sockets are one pool that every instance's listen() claims from.
// The successor is done as soon as the pool is empty; while sockets are left, it waits until as
// many instances have listened as the previous generation had, and then the sockets left are
// unclaimed: an error, as with one instance. Counting instances, rather than only waiting for the
// pool to empty, keeps the one-instance case as it was (an unclaimed socket fails at once, not at
// readyTimeout) and makes a release whose second instance listens elsewhere fail just as fast. An
// instance whose listen() ends later than that (a new one in this release) simply joins.
import { hotReloadError } from './errors'
import type { InheritedSocket } from './handoff-env'
import { formatAddress, type ListenerAddress } from './listener-address'
import type { ListeningSockets } from './listeners'

export type TakeoverStep = 'wait' | 'unclaimed' | 'done'

/**
 * @param expected instances the previous generation handed sockets from
 * @param listened instances of ours whose listen() calls are done
 * @param pending inherited sockets no instance claimed yet
 */
export function takeoverStep (expected: number, listened: number, pending: number): TakeoverStep {
  if (pending === 0) return 'done'
  return listened < expected ? 'wait' : 'unclaimed'
}

/** What an unclaimed socket means, for the log and the parent. */
export function unclaimedMessage (unclaimed: InheritedSocket[], asked: ListenerAddress[]): string {
  return `inherited socket(s) ${unclaimed.map((s) => `${formatAddress(s.address)} (fd ${s.fd})`).join(', ')} ` +
    `were not claimed: the app listens on ${asked.map(formatAddress).join(', ') || 'nothing'}; the old generation's addresses would go dark`
}

/**
 * The sockets a successor inherits: every instance's listening sockets, in instance order, and how
 * many instances they came from. Throws when nothing listens.
 */
export function socketsForSuccessor (perInstance: Array<Array<{ address: ListenerAddress | null, fd: number }>>): { sockets: ListeningSockets, instances: number } {
  const sockets: ListeningSockets = { addresses: [], fds: [] }
  let instances = 0
  for (const listening of perInstance) {
    if (listening.length === 0) continue
    instances++
    for (const { address, fd } of listening) {
      if (address === null) throw hotReloadError('HOT_RELOAD_NO_LISTENERS', 'a listening server has no address')
      sockets.addresses.push(address)
      sockets.fds.push(fd)
    }
  }
  if (instances === 0) throw hotReloadError('HOT_RELOAD_NO_LISTENERS', 'reload needs a listening server; call listen() first')
  return { sockets, instances }
}

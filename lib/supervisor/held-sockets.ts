// The listening sockets the supervisor keeps for the service's whole life, and which worker gets
// which. With one worker, or sockets from systemd, or a Node before 22.12, every worker shares the
// same sockets. With several workers otherwise, each slot has its own socket bound with
// SO_REUSEPORT by the slot's first worker and adopted by its later ones, so that the kernel spreads
// new connections evenly over the slots (BENCHMARKS.md, "Accepting with several workers").
import { ENV, reusePortEnv, type InheritedSocket } from '../handoff-env'
import { fdNameToAddress, formatAddress } from '../listener-address'
import { spawnPlan, type Command, type PlannedSpawn } from '../reload'
import type { HeldSocket } from './probation'

/** listen({ reusePort }) is there from Node 22.12 (and 23.1). */
export function reusePortSupported (version: string): boolean {
  const [major, minor] = version.split('.').map(Number)
  return major > 22 || (major === 22 && minor >= 12)
}

export class HeldSockets {
  /** A socket per slot (SO_REUSEPORT); otherwise `shared`. */
  readonly perSlot: boolean
  /** Why several workers share one socket, when they do. */
  readonly sharedBecause: string | undefined
  private readonly shared: HeldSocket[]
  private readonly bySlot = new Map<number, HeldSocket[]>()

  constructor (activated: InheritedSocket[], workers: number, nodeVersion: string) {
    this.shared = activated.map((socket) => ({ address: socket.address, fd: socket.fd }))
    this.perSlot = workers > 1 && activated.length === 0 && reusePortSupported(nodeVersion)
    if (workers > 1 && !this.perSlot) {
      this.sharedBecause = activated.length > 0 ? 'the sockets come from systemd' : `Node ${nodeVersion} has no reusePort (22.12 or later)`
    }
  }

  /** The sockets a worker of `slot` inherits. */
  forSlot (slot: number): HeldSocket[] {
    return this.perSlot ? this.bySlot.get(slot) ?? [] : this.shared
  }

  /** Every address held, once. */
  all (): HeldSocket[] {
    if (!this.perSlot) return this.shared
    const seen = new Map<string, HeldSocket>()
    for (const list of this.bySlot.values()) for (const socket of list) seen.set(formatAddress(socket.address), socket)
    return [...seen.values()]
  }

  /** The slot's spawn plan: its sockets, or (a socket per slot, none yet) what to bind with SO_REUSEPORT. */
  planFor (slot: number, command: Command, generation: number, instances: number): PlannedSpawn {
    const sockets = this.forSlot(slot)
    const plan = spawnPlan(command, { addresses: sockets.map((s) => s.address), fds: sockets.map((s) => s.fd) }, generation, process.pid, true, instances)
    if (!this.perSlot || sockets.length > 0) return plan
    const known = this.all().map((s) => s.address)
    return { ...plan, env: { ...plan.env, [ENV.reusePort]: reusePortEnv({ all: known.length === 0, addresses: known }) } }
  }

  /**
   * A socket a worker bound itself (its listener message): kept for the later workers of its slot
   * (or of every slot when shared). Returns the address kept, undefined when there was nothing to
   * keep, or null when the message held no usable socket. A socket not kept is closed: our copy
   * would hold it open, listening, with nobody accepting.
   */
  hold (slot: number, name: string, handle: unknown): string | undefined | null {
    const address = fdNameToAddress(encodeURIComponent(name))
    const fd = (handle as { fd?: unknown } | undefined)?.fd
    if (address === null || typeof fd !== 'number') {
      closeHandle(handle)
      return null
    }
    const held = this.perSlot ? this.bySlot.get(slot) ?? [] : this.shared
    if (held.some((s) => formatAddress(s.address) === formatAddress(address))) {
      closeHandle(handle)
      return undefined
    }
    held.push({ address, fd, handle })
    if (this.perSlot) this.bySlot.set(slot, held)
    return formatAddress(address)
  }

  /**
   * At shutdown: gives up every socket a worker sent up, so that once the workers stop accepting
   * the kernel refuses new connections at once (as in standalone mode) instead of queueing them for
   * no one until the drain ends. systemd's sockets (bare fds) stay: systemd holds them for the next
   * start anyway.
   */
  closeAll (): void {
    const lists = this.perSlot ? [...this.bySlot.values()] : [this.shared]
    for (const list of lists) {
      for (const socket of list) closeHandle(socket.handle)
    }
  }
}

function closeHandle (handle: unknown): void {
  const closable = handle as { close?: () => void } | undefined
  if (typeof closable?.close === 'function') closable.close()
}

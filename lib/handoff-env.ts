// The environment that hands listening sockets to a successor: the systemd LISTEN_FDS convention
// (fds from 3, LISTEN_FDNAMES), plus our own generation and parent markers.
import { fstatSync } from 'node:fs'
import { hotReloadError } from './errors'
import { addressToFdName, fdNameToAddress, type ListenerAddress } from './listener-address'
import { RANGES } from './validate'

export const FIRST_FD = 3
export const ENV = {
  fds: 'LISTEN_FDS',
  names: 'LISTEN_FDNAMES',
  pid: 'LISTEN_PID',
  parent: 'FASTIFY_HOT_RELOAD_PARENT',
  generation: 'FASTIFY_HOT_RELOAD_GENERATION',
  supervised: 'FASTIFY_HOT_RELOAD_SUPERVISED',
  /** How many Fastify instances the sockets came from (see takeover.ts); 1 when not set. */
  instances: 'FASTIFY_HOT_RELOAD_INSTANCES',
  /** A supervised worker's slot in its generation (0 to workers - 1), for its logs. */
  slot: 'FASTIFY_HOT_RELOAD_SLOT',
  /** Bind with SO_REUSEPORT (a socket per worker slot): 1 for every bind, or the addresses to bind (fd names). */
  reusePort: 'FASTIFY_HOT_RELOAD_REUSEPORT',
  /** Supervised: the supervisor's --drain-timeout, the longest a worker's drain may take (ms). */
  drainTimeout: 'FASTIFY_HOT_RELOAD_DRAIN_TIMEOUT'
} as const
const MAX_FDS = 1024

export interface InheritedSocket {
  fd: number
  name: string
  address: ListenerAddress
}

export interface Handoff {
  generation: number
  /** Pid of the generation (or supervisor) that spawned us. */
  parentPid: number
  /** Started by the supervisor: it does the reloads and keeps the sockets. */
  supervised: boolean
  sockets: InheritedSocket[]
  /** How many Fastify instances the sockets came from (an older release does not say: 1). */
  instances: number
  /** A supervised worker's slot in its generation; undefined when not said. */
  slot: number | undefined
  /** Binds this worker makes itself get SO_REUSEPORT; undefined when not asked. */
  reusePort: ReusePortPlan | undefined
  /** Supervised: the longest the supervisor lets a drain take; undefined when not said (standalone). */
  drainTimeout?: number
}

/**
 * The supervisor's --workers with a socket per slot: the first worker binds the app's addresses
 * with SO_REUSEPORT (`all`); a worker of another slot with no socket of its own yet binds these very
 * addresses (whatever port its app asks, 0 included) with SO_REUSEPORT.
 */
export interface ReusePortPlan {
  all: boolean
  addresses: ListenerAddress[]
}

type Env = Record<string, string | undefined>
type FdKind = 'socket' | 'file' | 'closed'

export function fdKind (fd: number): FdKind {
  try {
    return fstatSync(fd).isSocket() ? 'socket' : 'file'
  } catch {
    return 'closed'
  }
}

function bad (variable: string, message: string): Error {
  return hotReloadError('HOT_RELOAD_INVALID_HANDOFF', `fastify-hot-reload: ${variable}: ${message}`)
}

/**
 * Reads a handoff from a previous generation. Returns null when the environment holds none for us
 * (no marker); throws a clear error when it holds one that is malformed.
 */
export function readHandoff (env: Env, inspectFd: (fd: number) => FdKind = fdKind): Handoff | null {
  const parentText = env[ENV.parent]
  if (parentText === undefined) return null
  if (!/^[1-9]\d*$/.test(parentText)) throw bad(ENV.parent, `expected the parent's pid, got ${JSON.stringify(parentText)}`)
  const generationText = env[ENV.generation]
  if (generationText === undefined || !/^[1-9]\d*$/.test(generationText)) {
    throw bad(ENV.generation, `expected a whole number of 1 or more, got ${JSON.stringify(generationText)}`)
  }
  const supervisedText = env[ENV.supervised]
  if (supervisedText !== undefined && supervisedText !== '1') {
    throw bad(ENV.supervised, `expected 1 or nothing, got ${JSON.stringify(supervisedText)}`)
  }
  const instancesText = env[ENV.instances]
  if (instancesText !== undefined && !/^[1-9]\d*$/.test(instancesText)) {
    throw bad(ENV.instances, `expected a whole number of 1 or more, got ${JSON.stringify(instancesText)}`)
  }
  const slotText = env[ENV.slot]
  if (slotText !== undefined && !/^(0|[1-9]\d*)$/.test(slotText)) {
    throw bad(ENV.slot, `expected a whole number of 0 or more, got ${JSON.stringify(slotText)}`)
  }
  const reusePort = readReusePort(env[ENV.reusePort])
  const drainText = env[ENV.drainTimeout]
  if (drainText !== undefined && !(/^[1-9]\d*$/.test(drainText) && Number(drainText) <= RANGES.timeout.max)) {
    throw bad(ENV.drainTimeout, `expected a whole number of milliseconds from 1 to ${RANGES.timeout.max}, got ${JSON.stringify(drainText)}`)
  }
  const countText = env[ENV.fds]
  if (countText === undefined || !/^\d+$/.test(countText) || Number(countText) > MAX_FDS) {
    throw bad(ENV.fds, `expected the number of inherited sockets (0 to ${MAX_FDS}), got ${JSON.stringify(countText)}`)
  }
  const count = Number(countText)
  const names = count === 0 ? [] : (env[ENV.names] ?? '').split(':')
  if (names.length !== count) {
    throw bad(ENV.names, `expected ${count} names separated by ":" (one per LISTEN_FDS socket), got ${JSON.stringify(env[ENV.names] ?? '')}`)
  }
  const sockets = names.map((name, index): InheritedSocket => {
    const fd = FIRST_FD + index
    const address = fdNameToAddress(name)
    if (address === null) {
      throw bad(ENV.names, `name ${index + 1} (${JSON.stringify(name)}) is not an encoded listening address like 127.0.0.1%3A3000`)
    }
    const kind = inspectFd(fd)
    if (kind !== 'socket') {
      throw bad(ENV.fds, `fd ${fd} (${JSON.stringify(name)}) ${kind === 'closed' ? 'is not open' : 'is not a socket'}`)
    }
    return { fd, name, address }
  })
  return {
    generation: Number(generationText),
    parentPid: Number(parentText),
    supervised: supervisedText === '1',
    sockets,
    instances: instancesText === undefined ? 1 : Number(instancesText),
    slot: slotText === undefined ? undefined : Number(slotText),
    reusePort,
    drainTimeout: drainText === undefined ? undefined : Number(drainText)
  }
}

function readReusePort (text: string | undefined): ReusePortPlan | undefined {
  if (text === undefined) return undefined
  if (text === '1') return { all: true, addresses: [] }
  const addresses = text.split(':').map((name) => {
    const address = fdNameToAddress(name)
    if (address === null || address.kind !== 'tcp') {
      throw bad(ENV.reusePort, `expected 1 or TCP addresses like 127.0.0.1%3A3000 separated by ":", got ${JSON.stringify(text)}`)
    }
    return address
  })
  return { all: false, addresses }
}

/** The variable for a ReusePortPlan. */
export function reusePortEnv (plan: ReusePortPlan): string {
  return plan.all ? '1' : plan.addresses.map(addressToFdName).join(':')
}

/** The variables a successor needs; its sockets are passed at fds 3, 4, ... in this order. */
export function handoffEnv (addresses: ListenerAddress[], generation: number, parentPid: number, supervised = false, instances = 1): Env {
  return {
    [ENV.supervised]: supervised ? '1' : undefined,
    // Said only when more than one, as an older release did.
    [ENV.instances]: instances > 1 ? String(instances) : undefined,
    [ENV.fds]: String(addresses.length),
    [ENV.names]: addresses.map(addressToFdName).join(':'),
    [ENV.parent]: String(parentPid),
    [ENV.generation]: String(generation),
    // LISTEN_PID cannot be known before the successor exists; our parent marker stands for it.
    [ENV.pid]: undefined
  }
}

/** Removes the handoff so the app's own child processes do not see it. */
export function clearHandoffEnv (env: Env): void {
  for (const name of Object.values(ENV)) delete env[name]
}

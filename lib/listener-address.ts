// The address of a listening socket, its name in LISTEN_FDNAMES, and whether a listen() request asks for it.
import { isIP } from 'node:net'

export type ListenerAddress =
  | { kind: 'tcp', address: string, port: number }
  | { kind: 'unix', path: string }

/** What an app asked listen() for. `port` 0 means "any port". */
export type ListenRequest =
  | { kind: 'tcp', host: string | undefined, port: number }
  | { kind: 'unix', path: string }

export function formatAddress (address: ListenerAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`
  return isIP(address.address) === 6 ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`
}

// LISTEN_FDNAMES separates names with ':' so a name is the address, URI-encoded.
export function addressToFdName (address: ListenerAddress): string {
  return encodeURIComponent(formatAddress(address))
}

export function fdNameToAddress (name: string): ListenerAddress | null {
  let text: string
  try {
    text = decodeURIComponent(name)
  } catch {
    return null
  }
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length)
    return path.length > 0 ? { kind: 'unix', path } : null
  }
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text)
  if (match === null) return null
  const address = match[1] ?? match[2]
  const port = Number(match[3])
  const family = isIP(address)
  if (family === 0 || (family === 6) !== (match[1] !== undefined) || port > 65535) return null
  return { kind: 'tcp', address, port }
}

/** Reads what `server.address()` returns into a ListenerAddress. */
export function fromServerAddress (value: unknown): ListenerAddress | null {
  if (typeof value === 'string') return { kind: 'unix', path: value }
  if (typeof value === 'object' && value !== null && 'address' in value && 'port' in value) {
    const { address, port } = value as { address: string, port: number }
    return { kind: 'tcp', address, port }
  }
  return null
}

/** Understands the forms of net.Server#listen that name an address; null for the rest (handles, fds). */
export function parseListenArgs (args: unknown[]): ListenRequest | null {
  const first = args[0]
  // listen(callback): any port, on every address, like listen(0).
  if (typeof first === 'function') return { kind: 'tcp', host: undefined, port: 0 }
  if (typeof first === 'object' && first !== null) {
    const options = first as { port?: unknown, host?: unknown, path?: unknown, fd?: unknown, handle?: unknown, _handle?: unknown }
    if (options.fd !== undefined || options.handle !== undefined || options._handle !== undefined) return null
    if (typeof options.path === 'string' && options.path.length > 0) return { kind: 'unix', path: options.path }
    const port = toPort(options.port)
    if (port === null) return null
    return { kind: 'tcp', host: typeof options.host === 'string' && options.host !== '' ? options.host : undefined, port }
  }
  if (typeof first === 'string' && toPort(first) === null) return { kind: 'unix', path: first }
  const port = toPort(first)
  if (port === null) return null
  const host = typeof args[1] === 'string' ? args[1] : undefined
  return { kind: 'tcp', host: host === '' ? undefined : host, port }
}

function toPort (value: unknown): number | null {
  if (value === undefined || value === null) return 0
  const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
  return typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535 ? port : null
}

/** Addresses a host stands for when listening: no host means the unspecified address (IPv6 first). */
export function literalHosts (host: string | undefined): string[] | null {
  if (host === undefined) return ['::', '0.0.0.0']
  return isIP(host) === 0 ? null : [canonicalIP(host)]
}

/** The form Node reports for an address (0:0:0:0:0:0:0:1 and ::1 are the same host). */
export function canonicalIP (address: string): string {
  if (isIP(address) !== 6) return address
  return new URL(`http://[${address}]/`).hostname.slice(1, -1)
}

export function requestMatches (request: ListenRequest, hosts: string[], address: ListenerAddress): boolean {
  if (request.kind === 'unix' || address.kind === 'unix') {
    return request.kind === 'unix' && address.kind === 'unix' && request.path === address.path
  }
  return (request.port === 0 || request.port === address.port) && hosts.map(canonicalIP).includes(canonicalIP(address.address))
}

// systemd socket activation: sockets passed as fds 3.. with LISTEN_PID naming us. Their addresses
// are read from /proc (the kernel's own view), so the app's listen() calls can be matched to them
// whatever names the unit gave them.
import { readFileSync, readlinkSync } from 'node:fs'
import { hotReloadError } from './errors'
import { ENV, FIRST_FD, fdKind, type InheritedSocket } from './handoff-env'
import { addressToFdName, formatAddress, type ListenerAddress } from './listener-address'

type Env = Record<string, string | undefined>

/** Sockets systemd passed to this process, or null when LISTEN_PID does not name us. */
export function readSocketActivation (env: Env, pid: number = process.pid): InheritedSocket[] | null {
  if (env[ENV.pid] === undefined || env[ENV.parent] !== undefined) return null
  if (env[ENV.pid] !== String(pid)) return null
  const countText = env[ENV.fds] ?? ''
  if (!/^\d+$/.test(countText) || Number(countText) > 1024) {
    throw hotReloadError('HOT_RELOAD_INVALID_HANDOFF', `fastify-hot-reload: LISTEN_FDS: expected the number of sockets systemd passed, got ${JSON.stringify(env[ENV.fds])}`)
  }
  const count = Number(countText)
  // As sd_listen_fds_with_names(): names, when given, are one per fd; another count is an error (EINVAL).
  const namesText = env[ENV.names]
  if (count > 0 && namesText !== undefined && namesText.split(':').length !== count) {
    throw hotReloadError('HOT_RELOAD_INVALID_HANDOFF',
      `fastify-hot-reload: LISTEN_FDNAMES: expected ${count} names separated by ":" (one per LISTEN_FDS socket), got ${JSON.stringify(namesText)}`)
  }
  const expected = `expected ${count} listening socket(s) at fd ${FIRST_FD}${count > 1 ? ` to ${FIRST_FD + count - 1}` : ''}`
  const sockets: InheritedSocket[] = []
  for (let index = 0; index < count; index++) {
    const fd = FIRST_FD + index
    const kind = fdKind(fd)
    if (kind !== 'socket') {
      throw hotReloadError('HOT_RELOAD_INVALID_HANDOFF', `fastify-hot-reload: LISTEN_FDS: ${expected}, but fd ${fd} ${kind === 'closed' ? 'is not open' : 'is not a socket'}`)
    }
    const address = addressOfFd(fd)
    if (address === null) {
      throw hotReloadError('HOT_RELOAD_INVALID_HANDOFF', `fastify-hot-reload: LISTEN_FDS: ${expected}, but fd ${fd} is not a listening TCP or unix stream socket`)
    }
    sockets.push({ fd, name: addressToFdName(address), address })
  }
  return sockets
}

/** The address a listening socket fd is bound to, from /proc; null when it is not one. */
export function addressOfFd (fd: number, procRoot = '/proc'): ListenerAddress | null {
  let inode: string
  try {
    const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`${procRoot}/self/fd/${fd}`))
    if (match === null) return null
    inode = match[1]
  } catch {
    return null
  }
  for (const [file, parse] of [['tcp', parseIPv4], ['tcp6', parseIPv6]] as const) {
    for (const row of rows(`${procRoot}/net/${file}`)) {
      // Columns: sl local rem st ... inode (10th); st 0A is LISTEN.
      if (row[9] === inode && row[3] === '0A') {
        const [hexAddress, hexPort] = row[1].split(':')
        return { kind: 'tcp', address: parse(hexAddress), port: parseInt(hexPort, 16) }
      }
    }
  }
  for (const row of rows(`${procRoot}/net/unix`)) {
    // Columns: Num RefCount Protocol Flags Type St Inode Path; flags 00010000 is __SO_ACCEPTCON (listening).
    if (row[6] === inode && row[7] !== undefined && (parseInt(row[3], 16) & 0x10000) !== 0) {
      return { kind: 'unix', path: row[7] }
    }
  }
  return null
}

function rows (file: string): string[][] {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(1).map((line) => line.trim().split(/\s+/)).filter((row) => row.length > 7)
  } catch {
    return []
  }
}

// /proc prints addresses as 32-bit words in host byte order (little-endian here).
function wordBytes (hex: string): number[] {
  return [6, 4, 2, 0].map((offset) => parseInt(hex.slice(offset, offset + 2), 16))
}

function parseIPv4 (hex: string): string {
  return wordBytes(hex).join('.')
}

function parseIPv6 (hex: string): string {
  const bytes: number[] = []
  for (let word = 0; word < 4; word++) bytes.push(...wordBytes(hex.slice(word * 8, word * 8 + 8)))
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16))
  // IPv4-mapped addresses print as ::ffff:a.b.c.d, as Node does.
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') return `::ffff:${bytes.slice(12).join('.')}`
  return compressIPv6(groups)
}

function compressIPv6 (groups: string[]): string {
  let bestStart = -1
  let bestLength = 0
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > bestLength && j - i > 1) { bestStart = i; bestLength = j - i }
    i = j
  }
  if (bestStart === -1) return groups.join(':')
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`
}

export function describeSockets (sockets: InheritedSocket[]): string {
  return sockets.map((s) => `${formatAddress(s.address)} (fd ${s.fd})`).join(', ')
}

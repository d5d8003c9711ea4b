// The local control channel between the `reload`/`status` commands and a running supervisor: a
// unix socket with owner-only permissions in a private directory, never a TCP port. One JSON
// request line in, one JSON answer line out.
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs'
import { connect, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, dirname, extname, join } from 'node:path'
import { hotReloadError } from '../errors'
import { scriptIndex } from '../node-command'

export type ControlRequest = { command: 'reload' } | { command: 'status' }
export type ControlHandler = (request: ControlRequest) => Promise<object>

const MAX_REQUEST = 4096

/** Where the control sockets live by default: private to this user. */
export function defaultControlDir (): string {
  const runtime = process.env.XDG_RUNTIME_DIR
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0
  return runtime !== undefined && runtime !== '' ? join(runtime, 'fastify-hot-reload') : join(tmpdir(), `fastify-hot-reload-${uid}`)
}

/** The default control path of a service named after its script (app.js → app). */
export function defaultControlPath (name: string): string {
  return join(defaultControlDir(), `${name}.sock`)
}

/** The names of the services with a socket in the default place (one left by a killed supervisor included). */
export function defaultControlNames (): string[] {
  try {
    return readdirSync(defaultControlDir(), { withFileTypes: true })
      .filter((entry) => entry.isSocket() && entry.name.endsWith('.sock'))
      .map((entry) => entry.name.slice(0, -'.sock'.length))
      .sort()
  } catch {
    return []
  }
}

/** Why `name` cannot name a service's socket (it would be a path, or no name), or undefined when it can. */
export function serviceNameProblem (name: string): string | undefined {
  if (/^[A-Za-z0-9_.-]+$/.test(name) && name !== '.' && name !== '..') return undefined
  return `must be letters, digits, ".", "_" or "-" (it names the socket file ${defaultControlPath('<name>')}), got ${JSON.stringify(name)}`
}

export function nameFromCommand (command: string[]): string {
  const index = scriptIndex(command.slice(1))
  const script = index === -1 ? command[0] : command[index + 1]
  return basename(script, extname(script)).replace(/[^A-Za-z0-9_.-]/g, '_') || 'app'
}

function controlError (message: string): Error {
  return hotReloadError('HOT_RELOAD_INVALID_OPTION', `fastify-hot-reload: control socket: ${message}`)
}

/** Errors that say another live supervisor holds the path (not that the path is unusable). */
const takenErrors = new WeakSet<Error>()

/** True when listenControl() failed because a live supervisor answers on the path. */
export function isControlTaken (err: unknown): boolean {
  return err instanceof Error && takenErrors.has(err)
}

/** Makes sure the directory exists, is ours and is closed to everyone else. */
export function ensurePrivateDir (dir: string): void {
  if (!existsSync(dir)) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
    } catch (err) {
      throw controlError(`cannot create the directory ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
  }
  const stat = lstatSync(dir)
  if (!stat.isDirectory()) throw controlError(`${dir} is not a directory`)
  const uid = typeof process.getuid === 'function' ? process.getuid() : stat.uid
  if (stat.uid !== uid) throw controlError(`directory ${dir} belongs to uid ${stat.uid}, not to us (uid ${uid})`)
  if ((stat.mode & 0o077) !== 0) throw controlError(`directory ${dir} is open to other users (mode ${(stat.mode & 0o777).toString(8)}); it must be 700`)
}

function answers (path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path)
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Listens on the control path; refuses a path that a live supervisor or a non-socket holds. */
export async function listenControl (path: string, handler: ControlHandler): Promise<Server> {
  ensurePrivateDir(dirname(path))
  if (existsSync(path)) {
    const stat = lstatSync(path)
    if (!stat.isSocket()) throw controlError(`${path} exists and is not a socket; not touching it`)
    const uid = typeof process.getuid === 'function' ? process.getuid() : stat.uid
    if (stat.uid !== uid) throw controlError(`${path} belongs to uid ${stat.uid}, not to us`)
    if (await answers(path)) {
      const taken = controlError(`another supervisor is already running on ${path}`)
      takenErrors.add(taken)
      throw taken
    }
    unlinkSync(path) // stale, from a supervisor that died
  }
  const server = createServer((socket) => {
    let buffer = ''
    socket.setEncoding('utf8')
    socket.on('error', () => {})
    const answer = (body: object): void => { socket.end(JSON.stringify(body) + '\n') }
    const badRequest = (message: string): void => answer({ ok: false, error: { code: 'HOT_RELOAD_BAD_REQUEST', message } })
    const onData = (chunk: string): void => {
      buffer += chunk
      const end = buffer.indexOf('\n')
      // A line longer than any request is not one: closed unanswered. (What follows a line is not read.)
      if (end === -1 ? buffer.length > MAX_REQUEST : end > MAX_REQUEST) {
        socket.destroy()
        return
      }
      if (end === -1) return
      // One request per connection: whatever follows its line is not read.
      socket.removeListener('data', onData)
      let request: unknown
      try {
        request = JSON.parse(buffer.slice(0, end))
      } catch {
        return badRequest('request is not JSON')
      }
      const command = typeof request === 'object' && request !== null ? (request as { command?: unknown }).command : undefined
      if (command !== 'reload' && command !== 'status') {
        return badRequest(typeof request === 'object' && request !== null && !Array.isArray(request)
          ? `unknown command ${JSON.stringify(command)}`
          : 'request is not a JSON object with a "command"')
      }
      handler(request as ControlRequest).then(
        (body) => answer(body),
        (err: Error) => answer({ ok: false, error: { code: 'HOT_RELOAD_CONTROL_FAILED', message: err.message } })
      )
    }
    socket.on('data', onData)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => { server.removeListener('error', reject); resolve() })
  })
  chmodSync(path, 0o600)
  return server
}

/** Sends one request to a supervisor and resolves with its answer (with `onTimeout`'s, when given, if none comes in time). */
export function requestControl (path: string, request: ControlRequest, timeoutMs: number, onTimeout?: () => Record<string, unknown>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    if (!existsSync(path)) {
      return reject(controlError(`no supervisor listens on ${path} (no such socket). ` +
        'A service that runs without one (keepPid off, or Node before 22.15) is reloaded by signal: `kill -USR2 <pid>`, or `fastify-hot-reload reload --pid-file <its pidFile>`'))
    }
    if (!statSync(path).isSocket()) return reject(controlError(`${path} is not a socket`))
    const socket = connect(path)
    let buffer = ''
    let asked = false
    const timer = setTimeout(() => {
      socket.destroy()
      // Not even connected: nothing was asked, so nothing may still finish.
      if (!asked) reject(controlError(`could not ask the supervisor on ${path} within ${timeoutMs} ms: nothing was asked`))
      else if (onTimeout !== undefined) resolve(onTimeout())
      else reject(controlError(`no answer from ${path} within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.setEncoding('utf8')
    socket.once('connect', () => {
      asked = true
      socket.write(JSON.stringify(request) + '\n')
    })
    socket.on('data', (chunk) => { buffer += chunk })
    socket.once('error', (err) => {
      clearTimeout(timer)
      reject(controlError(`cannot reach a supervisor on ${path}: ${err.message}`))
    })
    socket.once('end', () => {
      clearTimeout(timer)
      try {
        resolve(JSON.parse(buffer))
      } catch {
        reject(controlError(`the supervisor on ${path} gave an answer that is not JSON`))
      }
    })
  })
}

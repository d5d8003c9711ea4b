// Fastify's logger (pino) writes to stdout asynchronously, through sonic-boom. At process.exit pino
// writes what is still queued synchronously, and sonic-boom 4 (pino 10's) retries such a write that
// failed with anything but EAGAIN for ever: with a log pipe whose reader is gone (`node app.js | cat`
// and a Ctrl-C, which ends cat too) the process hung at exit, deaf to every signal but SIGKILL. So
// before we exit, the write under way is let end: on a broken pipe it fails with EPIPE, and pino
// then turns its exit-time write off. A logger of another kind is not waited for.

/** The longest the exit waits for a write under way (a slow reader's full pipe, say). */
const SETTLE_MAX_MS = 1000
const POLL_MS = 1

interface AsyncDestination {
  /** sonic-boom: an asynchronous write is under way (the queue is written as each one ends). */
  _writing: boolean
}

/** The sonic-boom destination of a pino logger (a child's is its parent's), or undefined. */
export function asyncDestination (log: unknown): AsyncDestination | undefined {
  for (let level = log; typeof level === 'object' && level !== null; level = Object.getPrototypeOf(level)) {
    // pino's own symbol, found by its description: the app's pino may be another copy than ours.
    const symbol = Object.getOwnPropertySymbols(level).find((each) => each.description === 'pino.stream')
    if (symbol === undefined) continue
    const stream: unknown = (level as Record<symbol, unknown>)[symbol]
    const writing = typeof stream === 'object' && stream !== null ? (stream as { _writing?: unknown })._writing : undefined
    return typeof writing === 'boolean' ? stream as AsyncDestination : undefined
  }
  return undefined
}

/** The logger's destination while a write of it is under way, else undefined. */
function writing (log: unknown): AsyncDestination | undefined {
  const destination = asyncDestination(log)
  return destination?._writing === true ? destination : undefined
}

/** Resolves once the logger has no write under way (at once when it has none), or after `maxMs`. */
export function logWritten (log: unknown, maxMs = SETTLE_MAX_MS): Promise<void> {
  const destination = writing(log)
  if (destination === undefined) return Promise.resolve()
  const deadline = Date.now() + maxMs
  return new Promise((resolve) => {
    const poll = (): void => {
      if (!destination._writing || Date.now() >= deadline) resolve()
      else setTimeout(poll, POLL_MS)
    }
    setTimeout(poll, POLL_MS)
  })
}

/** Calls `exit` once the logger's write under way has ended: synchronously when none is. */
export function exitOnceLogged (log: unknown, exit: () => void): void {
  if (writing(log) === undefined) exit()
  else void logWritten(log).then(exit)
}

// keepPid replaces the process with the supervisor (execve): what the new image must keep of the
// contract the process had with whoever started it, and what it must not claim to have.
// - tsx relays SIGTERM/SIGINT to its child and SIGKILLs it unless the child acknowledges the signal
//   within 30 ms, through tsx's preflight (a `--require` tsx adds to the child's command line).
//   Without it the supervisor is killed in the middle of its stop, and its control socket stays.
// - nodemon and PM2 fork the app with an IPC channel (NODE_CHANNEL_FD). The channel's fd is
//   close-on-exec, so the variable would name whatever the new image opens at that number (its own
//   epoll fd): Node takes that for its channel and aborts at exit.

/** The variables that describe Node's IPC channel to the parent: the channel does not survive execve. */
const CHANNEL_VARS = ['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE']

/** The environment for the supervisor's image: the one the process was started with, less the IPC channel. */
export function supervisorEnvironment (started: Record<string, string>): Record<string, string> {
  const env = { ...started }
  for (const name of CHANNEL_VARS) delete env[name]
  return env
}

const TSX_PREFLIGHT = /[\\/]tsx[\\/]dist[\\/]preflight\.cjs$/

/** The preloads of the app's command line the supervisor must run too: tsx's preflight (its signal acknowledgement). */
export function runnerPreloads (execArgv: readonly string[]): string[] {
  const kept: string[] = []
  for (let i = 0; i < execArgv.length; i++) {
    const flag = execArgv[i]
    const inline = /^(?:--require|-r)=(.*)$/.exec(flag)
    const value = inline !== null ? inline[1] : (flag === '--require' || flag === '-r') ? execArgv[++i] : undefined
    if (value !== undefined && TSX_PREFLIGHT.test(value)) kept.push('--require', value)
  }
  return kept
}

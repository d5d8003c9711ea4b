// keepPid replaces the process with the supervisor (execve): what the new image must keep of the
// contract the process had with whoever started it, and what it must not claim to have.
// - tsx relays SIGTERM/SIGINT to its child and SIGKILLs it unless the child acknowledges the signal
//   within 30 ms, through tsx's preflight (a `--require` tsx adds to the child's command line).
//   Without it the supervisor is killed in the middle of its stop, and its control socket stays.
// - nodemon and PM2 fork the app with an IPC channel (NODE_CHANNEL_FD). The channel's fd is
//   close-on-exec, so the variable would name whatever the new image opens at that number (its own
//   epoll fd): Node takes that for its channel and aborts at exit.
// - Yarn's Plug'n'Play keeps packages in zip archives, readable only through its runtime (`node -r
//   ./.pnp.cjs app.js`): the supervisor's own script is in one, so the image needs that preload too.
//   (`yarn node` puts it in NODE_OPTIONS instead, which the image keeps with the environment.)

/** The variables that describe Node's IPC channel to the parent: the channel does not survive execve. */
const CHANNEL_VARS = ['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE']

/** The environment for the supervisor's image: the one the process was started with, less the IPC channel. */
export function supervisorEnvironment (started: Record<string, string>): Record<string, string> {
  const env = { ...started }
  for (const name of CHANNEL_VARS) delete env[name]
  return env
}

const TSX_PREFLIGHT = /[\\/]tsx[\\/]dist[\\/]preflight\.cjs$/
const PNP_RUNTIME = /(?:^|[\\/])\.pnp\.c?js$/
const KEPT_PRELOADS = [TSX_PREFLIGHT, PNP_RUNTIME]

/**
 * The preloads of the app's command line the supervisor must run too: tsx's preflight (its signal
 * acknowledgement) and Yarn PnP's runtime (the supervisor's script is in a zip).
 */
export function runnerPreloads (execArgv: readonly string[]): string[] {
  const kept: string[] = []
  for (let i = 0; i < execArgv.length; i++) {
    const flag = execArgv[i]
    const inline = /^(?:--require|-r)=(.*)$/.exec(flag)
    const value = inline !== null ? inline[1] : (flag === '--require' || flag === '-r') ? execArgv[++i] : undefined
    if (value !== undefined && KEPT_PRELOADS.some((preload) => preload.test(value))) kept.push('--require', value)
  }
  return kept
}

/** A script inside a zip archive: readable only through Yarn's runtime. */
const IN_ARCHIVE = /\.zip[\\/]/

/**
 * Whether the supervisor's image can read its own script. One inside Yarn's zips needs Yarn's
 * runtime preloaded, on the command line (kept above) or in NODE_OPTIONS (`yarn node`); an app that
 * sets the runtime up in its own code (`require('./.pnp.cjs').setup()`) has neither, and its
 * supervisor would die at start.
 */
export function canLoadSupervisor (bin: string, execArgv: readonly string[], env: Record<string, string | undefined>): boolean {
  if (!IN_ARCHIVE.test(bin)) return true
  const preloads = [...runnerPreloads(execArgv), ...(env.NODE_OPTIONS ?? '').split(/\s+/)]
  return preloads.some((preload) => PNP_RUNTIME.test(preload))
}

// fastify-cli (`fastify start`) closes the app on SIGTERM/SIGINT itself, with close-with-grace, and
// exits with code 1 `--close-grace-delay` ms later (default 500). Shorter than a drain, that cuts
// the requests still running and the app's onClose hooks, whatever this plugin's drainTimeout says.
// Read the way fastify-cli reads it: its flag, else FASTIFY_CLOSE_GRACE_DELAY (a .env it loaded is
// in process.env by now), else its default.
import { realpathSync } from 'node:fs'

const FASTIFY_CLI_DEFAULT_MS = 500

/**
 * fastify-cli's close grace in this process (ms), or undefined: not `fastify start`, or a config
 * file (`-c`) that may set it.
 */
export function fastifyCliCloseGraceMs (args: string[], env: Record<string, string | undefined>): number | undefined {
  const [script, command, ...rest] = args
  if (script === undefined || command !== 'start' || !isFastifyCli(script)) return undefined
  let value = env.FASTIFY_CLOSE_GRACE_DELAY
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]
    if (arg === '--') break
    if (arg === '--close-grace-delay' || arg === '-g') value = rest[i + 1]
    else if (arg.startsWith('--close-grace-delay=')) value = arg.slice('--close-grace-delay='.length)
    else if (arg === '-c' || arg === '--config' || arg.startsWith('--config=')) return undefined
  }
  if (value === undefined) return FASTIFY_CLI_DEFAULT_MS
  const ms = Number(value)
  return Number.isFinite(ms) ? ms : undefined
}

function isFastifyCli (script: string): boolean {
  try {
    return /[\\/]fastify-cli[\\/]cli\.js$/.test(realpathSync(script))
  } catch {
    return false
  }
}

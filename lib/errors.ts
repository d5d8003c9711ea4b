// Errors with stable codes, so callers (and the reload result) can tell causes apart.
import type { HotReloadError } from './types'

export type ErrorCode =
  | 'HOT_RELOAD_INVALID_OPTION'
  | 'HOT_RELOAD_INVALID_HANDOFF'
  | 'HOT_RELOAD_UNCLAIMED_SOCKET'
  | 'HOT_RELOAD_SPAWN_FAILED'
  | 'HOT_RELOAD_SUCCESSOR_EXITED'
  | 'HOT_RELOAD_READY_TIMEOUT'
  | 'HOT_RELOAD_SUCCESSOR_FAILED'
  | 'HOT_RELOAD_NOT_SERVING'
  | 'HOT_RELOAD_NO_LISTENERS'
  | 'HOT_RELOAD_NODE_INTERNALS'
  | 'HOT_RELOAD_SUPERVISOR_GONE'
  | 'HOT_RELOAD_WORKER_NOT_CONNECTED'
  | 'HOT_RELOAD_ALREADY_REGISTERED'
  | 'HOT_RELOAD_UNSUPPORTED'

/**
 * A failure as a log field (`error`, not pino's `err`, whose serializer adds a stack): its code and
 * message. Not the stack: it would point into this package (where the error was made), not at the
 * cause, which the message names.
 */
export function failureFields (err: HotReloadError | undefined): { type: string, code: string, message: string } | undefined {
  return err === undefined ? undefined : { type: err.name, code: err.code, message: err.message }
}

export function hotReloadError (code: ErrorCode, message: string, cause?: unknown): HotReloadError {
  const err = new Error(message, cause === undefined ? undefined : { cause }) as HotReloadError
  err.code = code
  return err
}

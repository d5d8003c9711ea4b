// Number checks shared by the plugin's options and the command line's flags, so that both accept the
// same values and say the same thing about the rest.
import type { ReloadSignal } from './types'

export interface Range {
  min: number
  max: number
  unit: string
}

/** setTimeout's limit. */
const MAX_TIMER_MS = 2 ** 31 - 1

export const RANGES = {
  /** A timeout or delay. */
  timeout: { min: 1, max: MAX_TIMER_MS, unit: 'milliseconds' },
  /** The probation, where 0 turns it off. */
  probation: { min: 0, max: MAX_TIMER_MS, unit: 'milliseconds' },
  drainingGenerations: { min: 1, max: 1000, unit: 'generations' },
  /** How far below the serving generation a successor boots (bootNice, --boot-nice); 0 turns it off. */
  niceness: { min: 0, max: 19, unit: 'niceness steps' },
  /** Worker processes per generation (the supervisor's --workers). */
  workers: { min: 1, max: 1024, unit: 'workers' }
} satisfies Record<string, Range>

export function inRange (value: unknown, range: Range): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= range.min && value <= range.max
}

export function expectation (range: Range): string {
  return `a whole number of ${range.unit} from ${range.min} to ${range.max}`
}

/** A flag's text as a number when it is plain digits, else NaN (which no range accepts). */
export function numberFromText (text: string): number {
  return /^\d+$/.test(text) ? Number(text) : Number.NaN
}

/**
 * The signals a reload may be asked by: the plugin's `reloadSignals`, the supervisor's
 * `--reload-signal` and `reload --signal`. The others mean something else (SIGCHLD, SIGPIPE, SIGSEGV
 * come from the system) or are the stop signals.
 */
// Every one of the public ReloadSignal type, and no other (the compiler checks both).
const reloadSignals: Record<ReloadSignal, true> = { SIGHUP: true, SIGUSR1: true, SIGUSR2: true, SIGWINCH: true, SIGCONT: true, SIGALRM: true, SIGPWR: true }
export const RELOAD_SIGNALS: ReadonlySet<string> = new Set(Object.keys(reloadSignals))

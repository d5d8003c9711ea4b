// Validates the plugin options at registration: every mistake names the option and what was expected.
import { accessSync, constants as fsConstants, statSync } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { resolve } from 'node:path'
import { hotReloadError } from './errors'
import { pidFileProblem } from './pid-file'
import { expectation, inRange, RANGES, RELOAD_SIGNALS, type Range } from './validate'
import type { HotReloadOptions, SuccessorOptions, UnderPressureOptions } from './types'

export interface ResolvedOptions {
  reloadSignals: NodeJS.Signals[]
  readyTimeout: number
  drainTimeout: number
  idleGrace: number
  healthPath: string | false
  livenessPath: string | false
  underPressure: UnderPressureOptions | false
  gracefulShutdown: boolean
  successor: SuccessorOptions
  pidFile: string | undefined
  connectionHandoff: boolean
  probation: number
  bootNice: number
  maxDrainingGenerations: number
  closeSpread: number
  /** undefined: the default (see decideKeepPid). */
  keepPid: boolean | undefined
}

export const DEFAULTS = {
  reloadSignals: ['SIGUSR2'] as NodeJS.Signals[],
  readyTimeout: 30_000,
  drainTimeout: 30_000,
  idleGrace: 1_000,
  healthPath: '/health',
  livenessPath: '/health/live',
  gracefulShutdown: true,
  connectionHandoff: true,
  probation: 2_000,
  bootNice: 10,
  maxDrainingGenerations: 5
}

// Signals a process cannot catch, or that the plugin keeps for graceful shutdown.
const UNCATCHABLE = new Set(['SIGKILL', 'SIGSTOP'])
const SHUTDOWN_SIGNALS = new Set(['SIGTERM', 'SIGINT'])
const KNOWN_OPTIONS = new Set([
  'reloadSignals', 'readyTimeout', 'drainTimeout', 'idleGrace', 'healthPath', 'livenessPath',
  'underPressure', 'gracefulShutdown', 'successor', 'pidFile', 'connectionHandoff', 'probation',
  'bootNice', 'maxDrainingGenerations', 'closeSpread', 'keepPid'
])
const SUCCESSOR_KEYS = new Set(['execPath', 'execArgv', 'args', 'env', 'cwd'])

function invalid (option: string, expected: string, got: unknown): Error {
  return hotReloadError('HOT_RELOAD_INVALID_OPTION',
    `fastify-hot-reload: option "${option}" must be ${expected}, got ${describe(got)}`)
}

function describe (value: unknown): string {
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`
  if (Array.isArray(value)) return `array ${JSON.stringify(value)}`
  if (value === null) return 'null'
  if (typeof value === 'object') return 'an object'
  return `${typeof value} ${String(value)}`
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function wholeNumber (name: string, value: unknown, fallback: number, range: Range): number {
  if (value === undefined) return fallback
  if (!inRange(value, range)) throw invalid(name, expectation(range), value)
  return value
}

function routePath (name: string, value: unknown, fallback: string): string | false {
  if (value === undefined) return fallback
  if (value === false) return false
  if (typeof value !== 'string' || !value.startsWith('/')) {
    throw invalid(name, 'a path starting with "/" or false', value)
  }
  return value
}

function signals (value: unknown): NodeJS.Signals[] {
  if (value === undefined) return [...DEFAULTS.reloadSignals]
  if (!Array.isArray(value)) throw invalid('reloadSignals', 'an array of signal names such as ["SIGUSR2", "SIGHUP"]', value)
  for (const name of value) {
    if (typeof name !== 'string' || !(name in osConstants.signals)) {
      throw invalid('reloadSignals', 'an array of signal names known to this system (SIGUSR2, SIGHUP, ...)', name)
    }
    if (UNCATCHABLE.has(name)) throw invalid('reloadSignals', 'catchable signals (not SIGKILL or SIGSTOP)', name)
    if (SHUTDOWN_SIGNALS.has(name)) {
      throw invalid('reloadSignals', 'signals other than SIGTERM and SIGINT (they shut down gracefully)', name)
    }
    // SIGCHLD with every child process that ends, SIGPIPE, SIGSEGV...: a reload on those would come unasked.
    if (!RELOAD_SIGNALS.has(name)) throw invalid('reloadSignals', `signals from ${[...RELOAD_SIGNALS].join(', ')}`, name)
  }
  return [...new Set(value as NodeJS.Signals[])]
}

/** @fastify/under-pressure's options (9.x), and what each must be: it checks hardly any itself. */
const UNDER_PRESSURE_KEYS: Record<string, { expected: string, valid: (value: unknown) => boolean }> = {
  maxEventLoopDelay: { expected: 'milliseconds, 0 or more', valid: isNonNegative },
  maxHeapUsedBytes: { expected: 'bytes, 0 or more', valid: isNonNegative },
  maxRssBytes: { expected: 'bytes, 0 or more', valid: isNonNegative },
  maxEventLoopUtilization: { expected: 'a fraction from 0 to 1', valid: (value) => isNonNegative(value) && (value as number) <= 1 },
  eventLoopUtilizationMode: { expected: '"cumulative" or "interval"', valid: (value) => value === 'cumulative' || value === 'interval' },
  sampleInterval: { expected: 'milliseconds, 0 or more', valid: isNonNegative },
  retryAfter: { expected: 'seconds, 0 or more', valid: isNonNegative },
  healthCheck: { expected: 'a function', valid: (value) => typeof value === 'function' },
  healthCheckInterval: { expected: 'milliseconds, 0 or more', valid: isNonNegative },
  pressureHandler: { expected: 'a function', valid: (value) => typeof value === 'function' },
  customError: { expected: 'an error class', valid: (value) => typeof value === 'function' },
  message: { expected: 'a string', valid: (value) => typeof value === 'string' },
  exposeStatusRoute: { expected: 'true, false, a path or a route options object', valid: (value) => typeof value === 'boolean' || typeof value === 'string' || isPlainObject(value) }
}

function isNonNegative (value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}

/**
 * A copy of the options for @fastify/under-pressure, checked (a threshold it cannot read would
 * never report pressure), or false. Not given: not registered. Without thresholds under-pressure
 * never reports pressure, and its event-loop sampling (a 10 ms timer) would cost CPU every second
 * for nothing (bench/cost.js). A copy: under-pressure writes into the object it is given.
 */
function underPressureOptions (value: unknown): UnderPressureOptions | false {
  if (value === undefined || value === false) return false
  if (!isPlainObject(value)) throw invalid('underPressure', 'an options object for @fastify/under-pressure or false', value)
  for (const [key, setting] of Object.entries(value)) {
    const rule = UNDER_PRESSURE_KEYS[key]
    if (rule === undefined) throw invalid(`underPressure.${key}`, `one of ${Object.keys(UNDER_PRESSURE_KEYS).join(', ')} (unknown option)`, setting)
    if (setting !== undefined && !rule.valid(setting)) throw invalid(`underPressure.${key}`, rule.expected, setting)
  }
  // Without an interval under-pressure runs the check only for its own status route: /health would never hear of it.
  if (value.healthCheck !== undefined && !(typeof value.healthCheckInterval === 'number' && value.healthCheckInterval > 0)) {
    throw invalid('underPressure.healthCheckInterval', 'milliseconds above 0 with underPressure.healthCheck (/health reports the verdict of its last periodic run)', value.healthCheckInterval)
  }
  return { ...value }
}

/** The path of under-pressure's own status route, or null when it has none (its README's defaults). */
function statusRoutePath (options: UnderPressureOptions | false): string | null {
  const route = options === false ? undefined : options.exposeStatusRoute
  if (route === undefined || route === false) return null
  if (route === true) return '/status'
  return typeof route === 'string' ? route : route.url ?? '/status'
}

function stringArray (name: string, value: unknown): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw invalid(name, 'an array of strings', value)
  }
  return value
}

function nonEmptyString (name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value.length === 0) throw invalid(name, 'a non-empty string', value)
  return value
}

/**
 * A typo in `successor.cwd` or `successor.execPath` would fail only the first reload, hours later:
 * both are checked now. A bare command name (no slash) is looked up on PATH at spawn time and is left
 * alone; a directory removed after registration still fails its reload clearly (lib/successor.ts).
 */
function existingDirectory (name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  let problem: string | null
  try {
    problem = statSync(value).isDirectory() ? null : 'not a directory'
  } catch (err) {
    problem = `missing: ${errorCode(err)}`
  }
  if (problem !== null) throw invalid(name, `an existing directory (${resolve(value)}: ${problem})`, value)
  return value
}

function executableFile (name: string, value: string | undefined): string | undefined {
  if (value === undefined || !value.includes('/')) return value
  let problem: string | null
  try {
    problem = statSync(value).isFile() ? null : 'not a file'
    if (problem === null) accessSync(value, fsConstants.X_OK)
  } catch (err) {
    problem = errorCode(err) === 'EACCES' ? 'not executable' : `missing: ${errorCode(err)}`
  }
  if (problem !== null) throw invalid(name, `an executable file (${resolve(value)}: ${problem})`, value)
  return value
}

function errorCode (err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err)
}

function successorOptions (value: unknown): SuccessorOptions {
  if (value === undefined) return {}
  if (!isPlainObject(value)) throw invalid('successor', 'an object { execPath, execArgv, args, env, cwd }', value)
  for (const key of Object.keys(value)) {
    if (!SUCCESSOR_KEYS.has(key)) throw invalid(`successor.${key}`, 'one of execPath, execArgv, args, env, cwd (unknown key)', value[key])
  }
  const env = value.env
  if (env !== undefined) {
    if (!isPlainObject(env)) throw invalid('successor.env', 'an object of strings', env)
    for (const [key, item] of Object.entries(env)) {
      if (item !== undefined && typeof item !== 'string') throw invalid(`successor.env.${key}`, 'a string or undefined', item)
    }
  }
  const args = stringArray('successor.args', value.args)
  if (args !== undefined && args.length === 0) throw invalid('successor.args', 'a non-empty array (the script first)', args)
  return {
    execPath: executableFile('successor.execPath', nonEmptyString('successor.execPath', value.execPath)),
    execArgv: stringArray('successor.execArgv', value.execArgv),
    args,
    env: env as Record<string, string | undefined> | undefined,
    cwd: existingDirectory('successor.cwd', nonEmptyString('successor.cwd', value.cwd))
  }
}

export function resolveOptions (input: unknown): ResolvedOptions {
  const opts: HotReloadOptions = input === undefined ? {} : (input as HotReloadOptions)
  if (!isPlainObject(opts)) throw invalid('options', 'an object', input)
  for (const key of Object.keys(opts)) {
    // Fastify passes its own registration keys (prefix, logLevel, ...) through the options object.
    if (!KNOWN_OPTIONS.has(key) && !FASTIFY_REGISTER_KEYS.has(key)) {
      throw invalid(key, `one of ${[...KNOWN_OPTIONS].join(', ')} (unknown option)`, (opts as Record<string, unknown>)[key])
    }
  }
  const underPressure = underPressureOptions(opts.underPressure)
  for (const name of ['gracefulShutdown', 'connectionHandoff', 'keepPid'] as const) {
    if (opts[name] !== undefined && typeof opts[name] !== 'boolean') throw invalid(name, 'true or false', opts[name])
  }
  const healthPath = routePath('healthPath', opts.healthPath, DEFAULTS.healthPath)
  const livenessPath = routePath('livenessPath', opts.livenessPath, DEFAULTS.livenessPath)
  if (healthPath !== false && healthPath === livenessPath) {
    throw invalid('livenessPath', `a path other than healthPath (${healthPath})`, livenessPath)
  }
  const statusRoute = statusRoutePath(underPressure)
  for (const [name, path] of [['healthPath', healthPath], ['livenessPath', livenessPath]] as const) {
    if (statusRoute !== null && statusRoute === path) {
      throw invalid('underPressure.exposeStatusRoute', `a path other than ${name} (${path}): the probe answers there`, (opts.underPressure as UnderPressureOptions).exposeStatusRoute)
    }
  }
  const drainTimeout = wholeNumber('drainTimeout', opts.drainTimeout, DEFAULTS.drainTimeout, RANGES.timeout)
  return {
    reloadSignals: signals(opts.reloadSignals),
    readyTimeout: wholeNumber('readyTimeout', opts.readyTimeout, DEFAULTS.readyTimeout, RANGES.timeout),
    drainTimeout,
    idleGrace: wholeNumber('idleGrace', opts.idleGrace, DEFAULTS.idleGrace, RANGES.timeout),
    healthPath,
    livenessPath,
    underPressure,
    gracefulShutdown: (opts.gracefulShutdown as boolean | undefined) ?? DEFAULTS.gracefulShutdown,
    successor: successorOptions(opts.successor),
    pidFile: pidFile(opts.pidFile),
    connectionHandoff: (opts.connectionHandoff as boolean | undefined) ?? DEFAULTS.connectionHandoff,
    probation: wholeNumber('probation', opts.probation, DEFAULTS.probation, RANGES.probation),
    bootNice: wholeNumber('bootNice', opts.bootNice, DEFAULTS.bootNice, RANGES.niceness),
    maxDrainingGenerations: wholeNumber('maxDrainingGenerations', opts.maxDrainingGenerations, DEFAULTS.maxDrainingGenerations, RANGES.drainingGenerations),
    closeSpread: closeSpread(opts.closeSpread, drainTimeout),
    keepPid: opts.keepPid as boolean | undefined
  }
}

/** Default half of drainTimeout; it must end before drainTimeout, or the last closes would be cuts. */
function closeSpread (value: unknown, drainTimeout: number): number {
  if (value === undefined) return Math.floor(drainTimeout / 2)
  const range = { min: 0, max: drainTimeout - 1, unit: 'milliseconds' }
  if (!inRange(value, range)) throw invalid('closeSpread', `${expectation(range)} (less than drainTimeout, ${drainTimeout})`, value)
  return value
}

function pidFile (value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value === '') throw invalid('pidFile', 'a file path', value)
  const path = resolve(value)
  const problem = pidFileProblem(path)
  if (problem !== null) throw invalid('pidFile', `a path in a directory we can write (${problem})`, value)
  return path
}

// Keys Fastify itself may put in a plugin's options (register options).
const FASTIFY_REGISTER_KEYS = new Set(['prefix', 'logLevel', 'logSerializers'])

/**
 * Under a supervisor, its --drain-timeout is the longest a worker's drain may take: past it the
 * supervisor kills the worker at shutdown, and a container runtime's stop timeout is sized to it.
 * A longer drainTimeout of this instance is cut to it, and closeSpread to half of it unless it
 * already ends before. Returns the options unchanged when there is no limit or it is not below.
 */
export function limitDrain (options: ResolvedOptions, limit: number | undefined): ResolvedOptions {
  if (limit === undefined || limit >= options.drainTimeout) return options
  const closeSpread = options.closeSpread < limit ? options.closeSpread : Math.floor(limit / 2)
  return { ...options, drainTimeout: limit, closeSpread }
}

// The `fastify-hot-reload` command: start (the supervisor), reload, status.
import { existsSync, unlinkSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { isAbsolute, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { clearHandoffEnv, type InheritedSocket } from '../handoff-env'
import { captureLaunch } from '../launch'
import { DEFAULTS } from '../options'
import { toWire } from '../reload-result'
import { createNotifier } from '../sd-notify'
import { ServiceStatus } from '../service-status'
import { expectation, inRange, numberFromText, RANGES, SUPERVISOR_SIGNALS, type Range } from '../validate'
import { pidFileProblem, readPidFile, readReloadRecord, writePidFile } from '../pid-file'
import { readSocketActivation } from '../socket-activation'
import type { Server } from 'node:net'
import { defaultControlDir, defaultControlPath, listenControl, nameFromCommand, requestControl, type ControlRequest } from '../supervisor/control'
import { Supervisor, type SupervisorLogger } from '../supervisor/supervisor'

const USAGE: Record<string, string> = {
  main: `Usage: fastify-hot-reload <command> [options]

Commands:
  start [options] -- <command...>   run the app under the stable-PID supervisor
  start [options] <app.js> [args]   the same, with this Node binary
  reload [--json]                   reload a running supervisor; exit 0 when the new generation serves
  status [--json]                   generations, pids, state, uptime, last reload

Run 'fastify-hot-reload <command> --help' for its options.`,
  start: `Usage: fastify-hot-reload start [options] -- <command...>
       fastify-hot-reload start [options] <app.js> [args...]

Runs the app as worker generations under a supervisor that keeps the listening sockets and its PID
for the service's whole life. SIGHUP/SIGUSR2 reload; SIGTERM/SIGINT stop gracefully.

Options:
  --workers <n|max>         worker processes per generation, all accepting on the same sockets
                            (default 1; max: one per CPU, os.availableParallelism()); a reload
                            starts all n new ones and drains the old ones once every new one is ready
  --reload-batch <k>        with --workers: a reload replaces k workers at a time (rolling), for
                            hosts where twice the workers do not fit; still all or nothing
  --ready-timeout <ms>      how long a new generation may take to be ready (default 30000)
  --drain-timeout <ms>      how long an old generation may take to drain (default 30000)
  --restart-delay <ms>      first delay before restarting a crashed worker (default 100)
  --restart-max-delay <ms>  cap of the exponential restart delay (default 10000)
  --probation <ms>          a new generation must serve this long before the old one finishes; if
                            it dies sooner, the old one serves again (default 2000; 0: off)
  --max-draining <n>        old generations that may drain at once; a reload beyond it makes the
                            oldest cut what it still has open and exit (default 5)
  --reload-signal <SIG>     signal that reloads (repeatable; default SIGHUP and SIGUSR2)
  --pid-file <path>         write the supervisor's pid here (atomically)
  --control <path>          control socket (default: <private dir>/<name>.sock)
  --name <name>             service name for the default control path (default: the script's name)
  -h, --help                this help`,
  reload: `Usage: fastify-hot-reload reload [--json] [--name <name> | --control <path> | --pid-file <path>] [--timeout <ms>]

Asks the running supervisor (or a standalone service with a pid file) to reload and waits for the
outcome: exit 0 when the new generation serves, 1 when the reload failed (the old generation keeps
serving) or gave no answer in time, 2 on a usage or connection error.

Options:
  --json              print the result as JSON
  --name <name>       the service name given to 'start' (or derived from its script)
  --control <path>    the control socket path given to 'start'
  --pid-file <path>   a standalone service's pid file (the plugin's pidFile option); sends SIGUSR2
  --signal <SIG>      with --pid-file: the reload signal the service listens to (default SIGUSR2)
  --timeout <ms>      how long to wait for the outcome (default 120000)
  -h, --help          this help`,
  status: `Usage: fastify-hot-reload status [--json] [--name <name> | --control <path>]

Prints the supervisor's generations, pids, state, uptime and last reload result.

Options:
  --json              print the status as JSON
  --name <name>       the service name given to 'start'
  --control <path>    the control socket path given to 'start'
  -h, --help          this help`
}

class UsageError extends Error {}

/** A numeric flag: plain digits within the range the plugin's option of the same meaning accepts. */
function numberFlag (name: string, value: string | undefined, fallback: number, range: Range): number {
  if (value === undefined) return fallback
  const number = numberFromText(value)
  if (!inRange(number, range)) throw new UsageError(`--${name} must be ${expectation(range)}, got ${JSON.stringify(value)}`)
  return number
}


function parse (args: string[], options: NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

function logger (): SupervisorLogger {
  // Same JSON lines as the workers' Fastify logs (pino), so one log pipe reads both.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pino = require('pino') as (opts: object) => SupervisorLogger
  return pino({ name: 'fastify-hot-reload' })
}

/** Resolves the app's command line and checks that the script exists. */
function appCommand (positionals: string[], dashed: boolean): string[] {
  if (positionals.length === 0) throw new UsageError("start needs the app: 'start -- node app.js' or 'start app.js'")
  const command = dashed ? positionals : [process.execPath, ...positionals]
  const script = command.slice(1).find((arg) => !arg.startsWith('-'))
  if (/(^|\/)node(\.exe)?$/.test(command[0]) || !dashed) {
    if (script === undefined) throw new UsageError(`no app script in: ${command.join(' ')}`)
    const path = isAbsolute(script) ? script : resolve(script)
    if (!existsSync(path)) throw new UsageError(`app file not found: ${path}`)
  }
  return command
}

function controlPathFrom (values: { control?: string, name?: string }): string {
  if (values.control !== undefined) return resolve(values.control)
  if (values.name !== undefined) return defaultControlPath(values.name)
  throw new UsageError(`say which service: --name <name> or --control <path> (default sockets live in ${defaultControlDir()})`)
}

async function start (argv: string[]): Promise<number> {
  const dash = argv.indexOf('--')
  const own = dash === -1 ? argv : argv.slice(0, dash)
  const { values, positionals } = parse(own, {
    workers: { type: 'string' },
    'reload-batch': { type: 'string' },
    'ready-timeout': { type: 'string' },
    'drain-timeout': { type: 'string' },
    'restart-delay': { type: 'string' },
    'restart-max-delay': { type: 'string' },
    'max-draining': { type: 'string' },
    probation: { type: 'string' },
    'reload-signal': { type: 'string', multiple: true },
    'pid-file': { type: 'string' },
    control: { type: 'string' },
    name: { type: 'string' },
    // Not for people: the plugin started this supervisor in place of the app (keepPid).
    'from-plugin': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  })
  if (values.help === true) return help('start')
  const fromPlugin = values['from-plugin'] === true
  const signalFlags = (values['reload-signal'] as string[] | undefined) ?? ['SIGHUP', 'SIGUSR2']
  // "none": reloads come through the control socket (or the app's reload()) only.
  const reloadSignals = signalFlags.filter((signal) => signal !== 'none')
  for (const signal of reloadSignals) {
    if (!SUPERVISOR_SIGNALS.has(signal)) throw new UsageError(`--reload-signal must be one of ${[...SUPERVISOR_SIGNALS].join(', ')}, got ${JSON.stringify(signal)}`)
  }
  const flag = (name: string): string | undefined => values[name] as string | undefined
  const readyTimeout = numberFlag('ready-timeout', flag('ready-timeout'), DEFAULTS.readyTimeout, RANGES.timeout)
  const drainTimeout = numberFlag('drain-timeout', flag('drain-timeout'), DEFAULTS.drainTimeout, RANGES.timeout)
  const restartDelay = numberFlag('restart-delay', flag('restart-delay'), 100, RANGES.timeout)
  const restartMaxDelay = numberFlag('restart-max-delay', flag('restart-max-delay'), 10_000, RANGES.timeout)
  const probation = numberFlag('probation', flag('probation'), DEFAULTS.probation, RANGES.probation)
  const workersFlag = flag('workers')
  const workers = workersFlag === 'max' ? availableParallelism() : numberFlag('workers', workersFlag, 1, RANGES.workers)
  const reloadBatch = numberFlag('reload-batch', flag('reload-batch'), workers, RANGES.workers)
  if (reloadBatch > workers) throw new UsageError(`--reload-batch must be at most --workers (${workers}), got ${reloadBatch}`)
  const maxDraining = numberFlag('max-draining', flag('max-draining'), DEFAULTS.maxDrainingGenerations, RANGES.drainingGenerations)
  if (dash !== -1 && positionals.length > 0) throw new UsageError(`unexpected argument before --: ${positionals[0]}`)
  // The plugin passes the command line the app was really started with: no script to look for.
  const command = fromPlugin ? argv.slice(dash + 1) : appCommand(dash === -1 ? positionals : argv.slice(dash + 1), dash !== -1)
  const name = (values.name as string | undefined) ?? nameFromCommand(command)
  let controlPath = values.control !== undefined ? resolve(values.control as string) : defaultControlPath(name)
  const pidFile = values['pid-file'] === undefined ? undefined : resolve(values['pid-file'] as string)
  const pidFileTrouble = pidFile === undefined ? null : pidFileProblem(pidFile)
  if (pidFileTrouble !== null) throw new UsageError(`--pid-file: ${pidFileTrouble}; expected a path in a directory we can write`)

  const log = logger()
  let activated: InheritedSocket[] = []
  activated = readSocketActivation(process.env) ?? []
  const env: Record<string, string | undefined> = { ...process.env }
  clearHandoffEnv(env)
  const launch = captureLaunch()
  // With a pid file, each reload's outcome is recorded beside it (for `reload --pid-file`).
  const status = new ServiceStatus(createNotifier(process.env, log), pidFile, log)
  const supervisor = new Supervisor({
    command, cwd: launch.cwd, env, readyTimeout, drainTimeout, restartDelay, restartMaxDelay, maxDraining, probation, activated, log, status, workers, reloadBatch
  })
  // Signals first: a reload signal that came before its handler would end the process.
  const finished = new Promise<number>((resolveExit) => {
    for (const signal of reloadSignals) {
      process.on(signal, () => {
        log.info({ supervisor: 'signal-received', signal }, `supervisor: ${signal} received; reloading`)
        void supervisor.reload()
      })
    }
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.on(signal, () => { void supervisor.shutdown(signal).then(resolveExit) })
    }
  })
  const answer = async (request: ControlRequest): Promise<object> => {
    if (request.command === 'status') return { ok: true, ...supervisor.status() }
    return toWire(await supervisor.reload())
  }
  let control: Server
  try {
    control = await listenControl(controlPath, answer)
  } catch (err) {
    // Two apps of the same name (two app.js) each keep their pid: the second gets a socket of its own.
    if (!fromPlugin || values.control !== undefined) throw err
    controlPath = defaultControlPath(`${name}-${process.pid}`)
    control = await listenControl(controlPath, answer)
  }
  if (pidFile !== undefined) {
    try {
      writePidFile(pidFile, process.pid)
    } catch (err) {
      // Nothing runs yet: give the control socket up, or it would keep this process alive for nothing.
      control.close()
      try { unlinkSync(controlPath) } catch {}
      throw new UsageError(`--pid-file: cannot write ${pidFile}: ${(err as Error).message}`)
    }
  }
  log.info({ supervisor: 'started', controlPath, pidFile, sockets: activated.length }, `supervisor: pid ${process.pid}, control socket ${controlPath}`)

  const first = await Promise.race([supervisor.start().then(() => supervisor.servingPid), finished.then(() => undefined)])
  let code: number
  if (first === undefined && supervisor.status().state !== 'stopping') {
    log.error({ supervisor: 'first-generation-failed' }, 'supervisor: the first generation did not start; stopping')
    code = await supervisor.shutdown('SIGTERM').then(() => 1)
  } else {
    code = await finished
  }
  control.close()
  try { unlinkSync(controlPath) } catch {}
  if (pidFile !== undefined) { try { unlinkSync(pidFile) } catch {} }
  log.info({ supervisor: 'stopped', exitCode: code }, `supervisor: stopped (exit code ${code})`)
  return code
}

async function reload (argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    json: { type: 'boolean' },
    name: { type: 'string' },
    control: { type: 'string' },
    'pid-file': { type: 'string' },
    signal: { type: 'string' },
    timeout: { type: 'string' },
    help: { type: 'boolean', short: 'h' }
  })
  if (values.help === true) return help('reload')
  const timeout = numberFlag('timeout', values.timeout as string | undefined, 120_000, RANGES.timeout)
  const result = values['pid-file'] !== undefined
    ? await reloadStandalone(resolve(values['pid-file'] as string), (values.signal as string | undefined) ?? 'SIGUSR2', timeout)
    : await requestControl(controlPathFrom(values as { control?: string, name?: string }), { command: 'reload' }, timeout)
  if (values.json === true) {
    process.stdout.write(JSON.stringify(result) + '\n')
  } else if (result.ok === true) {
    process.stdout.write(`reloaded: generation ${result.generation} (pid ${result.pid}) serving after ${result.durationMs} ms\n`)
  } else {
    const error = result.error as { code?: string, message?: string } | undefined
    process.stdout.write(`reload failed: ${error?.message ?? 'unknown error'} (${error?.code ?? 'no code'}); generation ${result.generation} (pid ${result.pid}) keeps serving\n`)
  }
  return result.ok === true ? 0 : 1
}

async function status (argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' }, name: { type: 'string' }, control: { type: 'string' }, help: { type: 'boolean', short: 'h' } })
  if (values.help === true) return help('status')
  const path = controlPathFrom(values as { control?: string, name?: string })
  const answer = await requestControl(path, { command: 'status' }, 10_000)
  if (values.json === true) {
    process.stdout.write(JSON.stringify(answer) + '\n')
    return 0
  }
  const workers = (answer.workers as Array<{ generation: number, slot?: number, pid: number, state: string, uptimeMs: number, restarts?: number }>) ?? []
  const last = answer.lastReload as { ok: boolean, generation: number, durationMs: number, error?: { message: string } } | undefined
  const lines = [
    `supervisor pid ${answer.pid}: ${answer.state}, generation ${answer.generation}, up ${Math.round(Number(answer.uptimeMs) / 1000)} s, ${answer.restarts} restart(s)`,
    `sockets: ${(answer.sockets as string[]).join(', ') || '(none yet)'}`,
    ...workers.map((w) => `  generation ${w.generation}${w.slot === undefined ? '' : ` slot ${w.slot}`}: pid ${w.pid} ${w.state}, up ${Math.round(w.uptimeMs / 1000)} s${w.restarts ? `, ${w.restarts} restart(s) in this slot` : ''}`),
    `last reload: ${last === undefined ? 'none' : last.ok ? `ok, generation ${last.generation} in ${last.durationMs} ms` : `failed: ${last.error?.message}`}`
  ]
  process.stdout.write(lines.join('\n') + '\n')
  return 0
}

/** Standalone mode: signal the pid in the pid file, then wait for the record of that reload. */
async function reloadStandalone (pidFile: string, signal: string, timeout: number): Promise<Record<string, unknown>> {
  if (!SUPERVISOR_SIGNALS.has(signal)) throw new UsageError(`--signal must be one of ${[...SUPERVISOR_SIGNALS].join(', ')}, got ${JSON.stringify(signal)}`)
  const pid = readPidFile(pidFile)
  if (pid === null) throw new UsageError(`${pidFile} does not hold a pid (is the service running with the pidFile option?)`)
  const sentAt = Date.now()
  try {
    process.kill(pid, signal as NodeJS.Signals)
  } catch (err) {
    throw new UsageError(`cannot signal pid ${pid} from ${pidFile}: ${(err as Error).message}`)
  }
  const deadline = sentAt + timeout
  while (Date.now() < deadline) {
    const record = readReloadRecord(pidFile)
    if (record !== null && record.fromPid === pid && record.finishedAt >= sentAt - 1_000) return record as unknown as Record<string, unknown>
    await new Promise((resolveWait) => setTimeout(resolveWait, 50))
  }
  return { ok: false, generation: 0, pid, durationMs: timeout, error: { code: 'HOT_RELOAD_NO_ANSWER', message: `no reload outcome recorded beside ${pidFile} within ${timeout} ms` } }
}

function help (command: keyof typeof USAGE): number {
  process.stdout.write(USAGE[command] + '\n')
  return 0
}

export async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'start': return await start(rest)
      case 'reload': return await reload(rest)
      case 'status': return await status(rest)
      case undefined: case 'help': case '--help': case '-h': return help('main')
      default: throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (err) {
    const message = (err as Error).message
    process.stderr.write(`fastify-hot-reload: ${message.replace(/^fastify-hot-reload: /, '')}\n`)
    if (err instanceof UsageError) process.stderr.write(`Run 'fastify-hot-reload ${command !== undefined && command in USAGE ? `${command} ` : ''}--help' for usage.\n`)
    return 2
  }
}

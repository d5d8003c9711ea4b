// `fastify-hot-reload start`: parses its flags, builds the supervisor, wires signals, the control
// socket and the pid file, and runs until the supervisor stops.
import { existsSync, unlinkSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { isAbsolute, resolve } from 'node:path'
import type { Server } from 'node:net'
import { clearHandoffEnv, type InheritedSocket } from '../handoff-env'
import { captureLaunch } from '../launch'
import { DEFAULTS } from '../options'
import { toWire } from '../reload-result'
import { createNotifier } from '../sd-notify'
import { ServiceStatus } from '../service-status'
import { RANGES, RELOAD_SIGNALS } from '../validate'
import { pidFileProblem, writePidFile } from '../pid-file'
import { readSocketActivation } from '../socket-activation'
import { describeSignalsBlocked, signalsBlockedHere } from '../signal-path'
import { restoreWorkerNodeOptions } from '../supervisor-image'
import { defaultControlPath, isControlTaken, listenControl, nameFromCommand, serviceNameProblem, type ControlRequest } from '../supervisor/control'
import { defaultBootConcurrency } from '../supervisor/options'
import { Supervisor, type SupervisorLogger } from '../supervisor/supervisor'
import { help, numberFlag, parse, UsageError } from './usage'
import { scriptIndex } from '../node-command'

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
  if (/(^|\/)node(\.exe)?$/.test(command[0]) || !dashed) {
    const index = scriptIndex(command.slice(1))
    if (index === -1) throw new UsageError(`no app script in: ${command.join(' ')}`)
    const script = command[index + 1]
    const path = isAbsolute(script) ? script : resolve(script)
    if (!existsSync(path)) throw new UsageError(`app file not found: ${path}`)
  }
  return command
}

export async function start (argv: string[]): Promise<number> {
  const dash = argv.indexOf('--')
  const own = dash === -1 ? argv : argv.slice(0, dash)
  const { values, positionals } = parse(own, {
    workers: { type: 'string' },
    'reload-batch': { type: 'string' },
    'boot-concurrency': { type: 'string' },
    'boot-nice': { type: 'string' },
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
  }, ['from-plugin'])
  if (values.help === true) return help('start')
  const fromPlugin = values['from-plugin'] === true
  const signalFlags = (values['reload-signal'] as string[] | undefined) ?? ['SIGHUP', 'SIGUSR2']
  // "none": reloads come through the control socket (or the app's reload()) only.
  const reloadSignals = signalFlags.filter((signal) => signal !== 'none')
  if (reloadSignals.length > 0 && reloadSignals.length < signalFlags.length) {
    throw new UsageError(`--reload-signal none means no signal reloads: not together with ${reloadSignals.join(', ')}`)
  }
  for (const signal of reloadSignals) {
    if (!RELOAD_SIGNALS.has(signal)) throw new UsageError(`--reload-signal must be one of ${[...RELOAD_SIGNALS].join(', ')}, got ${JSON.stringify(signal)}`)
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
  const bootConcurrency = numberFlag('boot-concurrency', flag('boot-concurrency'), defaultBootConcurrency(workers, availableParallelism()), RANGES.workers)
  const bootNice = numberFlag('boot-nice', flag('boot-nice'), DEFAULTS.bootNice, RANGES.niceness)
  const maxDraining = numberFlag('max-draining', flag('max-draining'), DEFAULTS.maxDrainingGenerations, RANGES.drainingGenerations)
  if (dash !== -1 && positionals.length > 0) throw new UsageError(`unexpected argument before --: ${positionals[0]}`)
  // The plugin passes the command line the app was really started with: no script to look for.
  const command = fromPlugin ? argv.slice(dash + 1) : appCommand(dash === -1 ? positionals : argv.slice(dash + 1), dash !== -1)
  const nameProblem = values.name === undefined ? undefined : serviceNameProblem(values.name as string)
  if (nameProblem !== undefined) throw new UsageError(`--name ${nameProblem}`)
  const name = (values.name as string | undefined) ?? nameFromCommand(command)
  let controlPath: string | undefined = values.control !== undefined ? resolve(values.control as string) : defaultControlPath(name)
  const pidFile = values['pid-file'] === undefined ? undefined : resolve(values['pid-file'] as string)
  const pidFileTrouble = pidFile === undefined ? null : pidFileProblem(pidFile)
  if (pidFileTrouble !== null) throw new UsageError(`--pid-file: ${pidFileTrouble}; expected a path in a directory we can write`)

  const log = logger()
  let activated: InheritedSocket[] = []
  activated = readSocketActivation(process.env) ?? []
  const env: Record<string, string | undefined> = { ...process.env }
  clearHandoffEnv(env)
  // keepPid's image ran without the app's preloads (supervisor-image.ts): its workers get them back.
  restoreWorkerNodeOptions(env)
  const launch = captureLaunch()
  // With a pid file, each reload's outcome is recorded beside it (for `reload --pid-file`).
  const status = new ServiceStatus(createNotifier(process.env, log), pidFile, log)
  const supervisor = new Supervisor({
    command, cwd: launch.cwd, env, readyTimeout, drainTimeout, restartDelay, restartMaxDelay, maxDraining, probation, activated, log, status, workers, reloadBatch, bootConcurrency, bootNice
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
    // These end a process that does not take them, at once: the service's workers, its socket and
    // pid file left to their fate. Where they do not reload, they stop it gracefully (LXC asks PID 1
    // to shut down with SIGPWR). SIGUSR1 is left to Node (its inspector); the others' default is to
    // do nothing.
    for (const signal of ['SIGHUP', 'SIGUSR2', 'SIGALRM', 'SIGPWR'] as const) {
      if (reloadSignals.includes(signal)) continue
      process.on(signal, () => {
        log.warn({ supervisor: 'signal-stops', signal, reloadSignals },
          `supervisor: ${signal} received, which does not reload this service (${reloadSignals.length === 0 ? 'no signal reloads' : `only ${reloadSignals.join(', ')} reload`}); stopping gracefully, as for SIGTERM`)
        void supervisor.shutdown(signal).then(resolveExit)
      })
    }
  })
  const answer = async (request: ControlRequest): Promise<object> => {
    if (request.command === 'status') return { ok: true, ...supervisor.status() }
    const result = toWire(await supervisor.reload())
    if (!result.ok) return result
    // Every worker of the new generation, for `reload` to name (the result names the first), and its
    // probation, for `reload --wait-probation` (as the reload record beside a pid file says it).
    const workers = supervisor.status().workers.filter((w) => w.generation === result.generation && w.state === 'serving')
    return { ...result, workerPids: workers.map((w) => w.pid), probationMs: probation }
  }
  let control: Server | undefined
  try {
    control = await listenControl(controlPath, answer)
  } catch (err) {
    // Asked for by path, or a second supervisor started by the same name: the user's to fix.
    if (values.control !== undefined || (isControlTaken(err) && !fromPlugin)) throw err
    try {
      // Two apps of the same name (two app.js) each keep their pid: the second gets a socket of its own.
      if (!isControlTaken(err)) throw err
      controlPath = defaultControlPath(`${name}-${process.pid}`)
      control = await listenControl(controlPath, answer)
      // `reload --name app` reaches the other one: say how to reach this one.
      log.warn({ supervisor: 'control-name-taken', name, controlPath },
        `supervisor: another service named ${name} runs here and answers \`--name ${name}\`; reach this one with \`fastify-hot-reload reload --name ${name}-${process.pid}\` (or --control ${controlPath})`)
    } catch (cause) {
      // The default place is not usable (a read-only /tmp, an XDG_RUNTIME_DIR of another user): the
      // service runs without its control socket, and signals still reload it.
      log.warn({ supervisor: 'control-unavailable', controlPath, err: cause },
        `supervisor: no control socket (${(cause as Error).message}): \`fastify-hot-reload reload --name ${name}\` and \`status\` will not reach this service; ` +
        'signals still reload it. Give it a writable place with --control PATH or XDG_RUNTIME_DIR')
      controlPath = undefined
    }
  }
  if (pidFile !== undefined) {
    try {
      writePidFile(pidFile, process.pid)
    } catch (err) {
      // Nothing runs yet: give the control socket up, or it would keep this process alive for nothing.
      closeControl(control, controlPath)
      throw new UsageError(`--pid-file: cannot write ${pidFile}: ${(err as Error).message}`)
    }
  }
  log.info({ supervisor: 'started', controlPath, pidFile, sockets: activated.length }, `supervisor: pid ${process.pid}, control socket ${controlPath ?? 'none'}`)
  // Started by name (keepPid's plugin said it already, before it became this supervisor).
  const blocked = fromPlugin ? undefined : signalsBlockedHere()
  if (blocked !== undefined) log.warn({ supervisor: 'signals-blocked', ...blocked }, `supervisor: ${describeSignalsBlocked(blocked)}`)

  const first = await Promise.race([supervisor.start().then(() => supervisor.servingPid), finished.then(() => undefined)])
  let code: number
  if (first === undefined && supervisor.status().state !== 'stopping') {
    log.error({ supervisor: 'first-generation-failed' }, 'supervisor: the first generation did not start; stopping')
    code = await supervisor.shutdown(undefined, 'the first generation did not start').then(() => 1)
  } else {
    code = await finished
  }
  closeControl(control, controlPath)
  if (pidFile !== undefined) { try { unlinkSync(pidFile) } catch {} }
  log.info({ supervisor: 'stopped', exitCode: code }, `supervisor: stopped (exit code ${code})`)
  return code
}

function closeControl (control: Server | undefined, path: string | undefined): void {
  if (control === undefined || path === undefined) return
  control.close()
  try { unlinkSync(path) } catch {}
}

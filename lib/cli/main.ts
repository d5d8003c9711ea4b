// The `fastify-hot-reload` command: start (the supervisor, cli/start.ts), reload, status.
import { resolve } from 'node:path'
import { PACKAGE_VERSION } from '../package-version'
import { RELOAD_SIGNALS, RANGES } from '../validate'
import { isAlive, readPidFile, readReloadRecord, reloadRecordPath } from '../pid-file'
import { defaultControlDir, defaultControlNames, defaultControlPath, requestControl, serviceNameProblem } from '../supervisor/control'
import { probationVerdict } from './probation-verdict'
import { start } from './start'
import { help, noPositionals, numberFlag, parse, USAGE, UsageError } from './usage'

function controlPathFrom (values: { control?: string, name?: string }): string {
  if (values.control !== undefined) return resolve(values.control)
  if (values.name !== undefined) {
    const problem = serviceNameProblem(values.name)
    if (problem !== undefined) throw new UsageError(`--name ${problem}`)
    return defaultControlPath(values.name)
  }
  // The one service with a socket in the default place is the one meant, as on most machines.
  const names = defaultControlNames()
  if (names.length === 1) return defaultControlPath(names[0])
  throw new UsageError(names.length === 0
    ? `no service has a control socket in ${defaultControlDir()}: give --control <path> (or --name <name>)`
    : `say which service: ${names.map((name) => `--name ${name}`).join(', ')} (their sockets are in ${defaultControlDir()}), or --control <path>`)
}

async function reload (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean' },
    name: { type: 'string' },
    control: { type: 'string' },
    'pid-file': { type: 'string' },
    signal: { type: 'string' },
    timeout: { type: 'string' },
    'wait-probation': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  })
  if (values.help === true) return help('reload')
  noPositionals('reload', positionals)
  if (values.signal !== undefined && values['pid-file'] === undefined) {
    throw new UsageError('--signal goes with --pid-file (a standalone service); a supervisor is reloaded through its control socket')
  }
  const timeout = numberFlag('timeout', values.timeout as string | undefined, 120_000, RANGES.timeout)
  const controlPath = values['pid-file'] === undefined ? controlPathFrom(values as { control?: string, name?: string }) : ''
  const signal = (values.signal as string | undefined) ?? 'SIGUSR2'
  if (!RELOAD_SIGNALS.has(signal)) throw new UsageError(`--signal must be one of ${[...RELOAD_SIGNALS].join(', ')}, got ${JSON.stringify(signal)}`)
  const pidFile = values['pid-file'] === undefined ? undefined : resolve(values['pid-file'] as string)
  const result = await reachable(values.json === true, async () => {
    const answer = pidFile !== undefined
      ? await reloadStandalone(pidFile, signal, timeout)
      : await requestControl(controlPath, { command: 'reload' }, timeout, () => noAnswer(0, timeout, `no reload outcome from ${controlPath} within ${timeout} ms`))
    if (values['wait-probation'] !== true || answer.ok !== true) return answer
    return await probationVerdict(pidFile !== undefined ? { pidFile } : { control: controlPath }, answer, timeout)
  })
  if (values.json === true) {
    process.stdout.write(JSON.stringify(result) + '\n')
  } else if (result.ok === true) {
    const pids = Array.isArray(result.workerPids) && result.workerPids.length > 1 ? `pids ${result.workerPids.join(', ')}` : `pid ${result.pid}`
    process.stdout.write(`reloaded: generation ${result.generation} (${pids}) serving after ${result.durationMs} ms\n`)
  } else {
    const error = result.error as { code?: string, message?: string } | undefined
    // No answer says nothing of what serves (the reload may still be running), and a service that
    // stops or is gone serves nothing.
    const serving = Number(result.pid) > 0 && error?.code !== NOT_SERVING ? `; generation ${result.generation} (pid ${result.pid}) keeps serving` : ''
    const tells = pidFile !== undefined ? `its record, ${reloadRecordPath(pidFile)}, tells` : '`status` tells'
    // A failure is an error, for a deploy script's `2>>` log too.
    process.stderr.write(error?.code === NO_ANSWER
      ? `reload: ${error.message}; it may still finish (${tells})\n`
      : `reload failed: ${error?.message ?? 'unknown error'} (${error?.code ?? 'no code'})${serving}\n`)
  }
  return result.ok === true ? 0 : 1
}

async function status (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, name: { type: 'string' }, control: { type: 'string' }, help: { type: 'boolean', short: 'h' } })
  if (values.help === true) return help('status')
  noPositionals('status', positionals)
  const path = controlPathFrom(values as { control?: string, name?: string })
  const answer = await reachable(values.json === true, async () => await requestControl(path, { command: 'status' }, 10_000))
  if (values.json === true) {
    process.stdout.write(JSON.stringify(answer) + '\n')
    return 0
  }
  const workers = (answer.workers as Array<{ generation: number, slot?: number, pid: number, state: string, uptimeMs: number, restarts?: number, version?: string }>) ?? []
  // A worker on another version of this package than the supervisor's (upgraded under the service).
  const otherVersion = (version: string | undefined): string => version !== undefined && version !== answer.version ? `, fastify-hot-reload ${version}` : ''
  const last = answer.lastReload as { ok: boolean, generation: number, durationMs: number, error?: { message: string }, rolledBack?: string } | undefined
  const lines = [
    `supervisor pid ${answer.pid} (fastify-hot-reload ${answer.version ?? 'unknown'}): ${answer.state}, generation ${answer.generation}, up ${Math.round(Number(answer.uptimeMs) / 1000)} s, ${answer.restarts} restart(s)`,
    `sockets: ${(answer.sockets as string[]).join(', ') || '(none yet)'}`,
    ...workers.map((w) => `  generation ${w.generation}${w.slot === undefined ? '' : ` slot ${w.slot}`}: pid ${w.pid} ${w.state}, up ${Math.round(w.uptimeMs / 1000)} s${w.restarts ? `, ${w.restarts} restart(s) in this slot` : ''}${otherVersion(w.version)}`),
    `last reload: ${last === undefined ? 'none' : last.ok ? `ok, generation ${last.generation} in ${last.durationMs} ms` : `failed: ${last.error?.message}`}` +
      (last?.rolledBack === undefined ? '' : `; rolled back (${last.rolledBack}), generation ${answer.generation} serves again`)
  ]
  process.stdout.write(lines.join('\n') + '\n')
  return 0
}

/**
 * Asks the service; one that cannot be asked (no supervisor on the socket, no pid in the pid file,
 * a pid that cannot be signalled) is exit 2, said as JSON too with --json.
 */
async function reachable (json: boolean, asking: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
  try {
    return await asking()
  } catch (err) {
    if (json) process.stdout.write(JSON.stringify({ ok: false, error: { code: 'HOT_RELOAD_CONTROL_FAILED', message: (err as Error).message } }) + '\n')
    throw err
  }
}

/** Standalone mode: signal the pid in the pid file, then wait for the record of that reload. */
async function reloadStandalone (pidFile: string, signal: string, timeout: number): Promise<Record<string, unknown>> {
  const pid = readPidFile(pidFile)
  if (pid === null) throw new Error(`${pidFile} does not hold a pid (is the service running with the pidFile option?)`)
  // The record of a reload before ours (a failed one leaves the same pid serving) is not our answer.
  const previous = readReloadRecord(pidFile)?.finishedAt ?? -Infinity
  const sentAt = Date.now()
  try {
    process.kill(pid, signal as NodeJS.Signals)
  } catch (err) {
    throw new Error(`cannot signal pid ${pid} from ${pidFile}: ${(err as Error).message}`)
  }
  const deadline = sentAt + timeout
  const outcome = (): Record<string, unknown> | undefined => {
    const record = readReloadRecord(pidFile)
    return record !== null && record.fromPid === pid && record.finishedAt > previous ? record as unknown as Record<string, unknown> : undefined
  }
  while (Date.now() < deadline) {
    const record = outcome()
    if (record !== undefined) return record
    // Gone with no record of a reload: the signal ended it (one it does not reload on), or it crashed.
    if (!isAlive(pid)) return outcome() ?? notReloaded(pid, `pid ${pid} from ${pidFile} exited after ${signal} without a record of a reload: does it reload on ${signal}? (its reloadSignals)`)
    await new Promise((resolveWait) => setTimeout(resolveWait, 50))
  }
  return noAnswer(pid, timeout, `no reload outcome recorded beside ${pidFile} within ${timeout} ms`)
}

const NO_ANSWER = 'HOT_RELOAD_NO_ANSWER'
const NOT_SERVING = 'HOT_RELOAD_NOT_SERVING'

/** The service signalled is gone and did not reload: exit 1, nothing serves there any more. */
function notReloaded (pid: number, message: string): Record<string, unknown> {
  return { ok: false, generation: 0, pid, durationMs: 0, error: { code: NOT_SERVING, message } }
}

/** `reload` gave up waiting (--timeout): exit 1, and the same answer by pid file or control socket. */
function noAnswer (pid: number, timeout: number, message: string): Record<string, unknown> {
  return { ok: false, generation: 0, pid, durationMs: timeout, error: { code: NO_ANSWER, message } }
}

function printVersion (): number {
  process.stdout.write(`${PACKAGE_VERSION}\n`)
  return 0
}

export async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'start': return await start(rest)
      case 'reload': return await reload(rest)
      case 'status': return await status(rest)
      case 'help': case '--help': case '-h': {
        // `help reload`: that command's help.
        const topic = rest[0] ?? 'main'
        if (!(topic in USAGE) || rest.length > 1) throw new UsageError(`no help for ${JSON.stringify(rest.join(' '))}: the commands are start, reload and status`)
        return help(topic)
      }
      case undefined:
        process.stderr.write(USAGE.main + '\n')
        return 2
      case '--version': case '-v': return printVersion()
      default: throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (err) {
    const message = (err as Error).message
    process.stderr.write(`fastify-hot-reload: ${message.replace(/^fastify-hot-reload: /, '')}\n`)
    if (err instanceof UsageError) process.stderr.write(`Run 'fastify-hot-reload ${command !== undefined && command in USAGE ? `${command} ` : ''}--help' for usage.\n`)
    return 2
  }
}

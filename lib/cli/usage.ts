// The command line's usage texts, `--help`, and the usage errors (exit code 2 with a pointer to --help).
import { parseArgs } from 'node:util'
import { expectation, inRange, numberFromText, type Range } from '../validate'

export const USAGE: Record<string, string> = {
  main: `Usage: fastify-hot-reload <command> [options]

Commands:
  start [options] -- <command...>   run the app under the stable-PID supervisor
  start [options] <app.js> [args]   the same, with this Node binary
  reload [--json]                   reload a running supervisor; exit 0 when the new generation serves
  status [--json]                   generations, pids, state, uptime, last reload

Run 'fastify-hot-reload <command> --help' (or 'help') for its options; --version (-v) prints this
package's version. Exit code 2: a usage error, or no supervisor to reach.`,
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
  --boot-concurrency <k>    with --workers: a reload's new workers boot k at a time, the next ones
                            once those have listened, so the serving workers keep CPUs meanwhile
                            (default half the CPUs, at least 1)
  --boot-nice <n>           a reload's new workers boot n niceness steps below the serving ones,
                            until they have listened (Linux; 0 to 19, default 10; 0: off)
  --ready-timeout <ms>      how long a new generation may take to be ready (default 30000)
  --drain-timeout <ms>      how long an old generation may take to drain (default 30000); a worker's
                            own drainTimeout is cut to it
  --restart-delay <ms>      first delay before restarting a crashed worker (default 100)
  --restart-max-delay <ms>  cap of the exponential restart delay (default 10000)
  --probation <ms>          a new generation must serve this long before the old one finishes; if
                            it dies sooner, the old one serves again (default 2000; 0: off)
  --max-draining <n>        old generations that may drain at once; a reload beyond it makes the
                            oldest cut what it still has open and exit (default 5)
  --reload-signal <SIG>     signal that reloads (repeatable; default SIGHUP and SIGUSR2; none: no
                            signal reloads, only the reload command); SIGHUP, SIGUSR2, SIGALRM or
                            SIGPWR that does not reload stops the service gracefully, as SIGTERM
  --pid-file <path>         write the supervisor's pid here (atomically)
  --control <path>          control socket (default: <private dir>/<name>.sock)
  --name <name>             service name for the default control path (letters, digits, ".", "_",
                            "-"; default: the script's name)
  -h, --help                this help`,
  reload: `Usage: fastify-hot-reload reload [--json] [--name <name> | --control <path> | --pid-file <path> [--signal <SIG>]] [--wait-probation] [--timeout <ms>]

Asks the running supervisor (or a standalone service with a pid file) to reload and waits for the
outcome: exit 0 when the new generation serves, 1 when the reload failed (the old generation keeps
serving) or gave no answer in time, 2 on a usage or connection error.

Options:
  --json              print the result as JSON
  --name <name>       the service name given to 'start' (or derived from its script); without
                      --name, --control or --pid-file: the one service with a socket in the
                      default place
  --control <path>    the control socket path given to 'start'
  --pid-file <path>   a standalone service's pid file (the plugin's pidFile option); sends SIGUSR2
  --signal <SIG>      with --pid-file: the reload signal the service listens to (default SIGUSR2)
  --wait-probation    once the new generation serves, wait out its probation; exit 1
                      (HOT_RELOAD_ROLLED_BACK) if it crashed meanwhile and the previous
                      generation serves again (what a deploy script should check)
  --timeout <ms>      how long to wait for the outcome (default 120000)
  -h, --help          this help`,
  status: `Usage: fastify-hot-reload status [--json] [--name <name> | --control <path>]

Prints the supervisor's generations, pids, state, uptime and last reload result.

Options:
  --json              print the status as JSON
  --name <name>       the service name given to 'start'; without --name or --control: the one
                      service with a socket in the default place
  --control <path>    the control socket path given to 'start'
  -h, --help          this help`
}

export class UsageError extends Error {}

/** A numeric flag: plain digits within the range the plugin's option of the same meaning accepts. */
export function numberFlag (name: string, value: string | undefined, fallback: number, range: Range): number {
  if (value === undefined) return fallback
  const number = numberFromText(value)
  if (!inRange(number, range)) throw new UsageError(`--${name} must be ${expectation(range)}, got ${JSON.stringify(value)}`)
  return number
}

/** A command that takes only options: an argument besides them would be ignored, so it is an error. */
export function noPositionals (command: string, positionals: string[]): void {
  if (positionals.length > 0) throw new UsageError(`${command} takes only options, got ${positionals.map((p) => JSON.stringify(p)).join(' ')}`)
}

/**
 * A value that starts with a dash, given as the next argument (`--workers -1`), is taken for the
 * value it is, so that its own check says what is expected (Node's parser calls it ambiguous).
 */
function joinDashedValues (args: string[], options: Record<string, { type: string }>): string[] {
  const joined: string[] = []
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith('--') ? args[i].slice(2) : undefined
    if (args[i] === '--') return [...joined, ...args.slice(i)]
    if (name !== undefined && options[name]?.type === 'string' && /^-\d/.test(args[i + 1] ?? '')) {
      joined.push(`${args[i]}=${args[i + 1]}`)
      i++
    } else {
      joined.push(args[i])
    }
  }
  return joined
}

/** `hidden`: options not for people, left out of the list an unknown option is answered with. */
export function parse (args: string[], options: NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>, hidden: string[] = []) {
  try {
    return parseArgs({ args: joinDashedValues(args, options), options, allowPositionals: true, strict: true })
  } catch (err) {
    // Node's own text advises putting an unknown option after `--`, which would hand it to the app.
    const unknown = /^Unknown option '([^']+)'/.exec((err as Error).message)?.[1]
    if (unknown === undefined) throw new UsageError((err as Error).message)
    const known = Object.keys(options).filter((name) => !hidden.includes(name)).map((name) => `--${name}`)
    const near = closest(unknown.replace(/=.*$/, ''), known)
    throw new UsageError(`unknown option ${unknown}${near === undefined ? '' : `; did you mean ${near}?`} (options: ${known.join(', ')})`)
  }
}

/** The name within two edits of `name`, if one is. */
function closest (name: string, names: string[]): string | undefined {
  let best: { name: string, distance: number } | undefined
  for (const candidate of names) {
    const distance = editDistance(name, candidate)
    if (distance <= 2 && (best === undefined || distance < best.distance)) best = { name: candidate, distance }
  }
  return best?.name
}

function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]
}

export function help (command: keyof typeof USAGE): number {
  process.stdout.write(USAGE[command] + '\n')
  return 0
}

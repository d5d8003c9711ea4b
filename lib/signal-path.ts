// Whether the signals meant for the service can reach it. Whatever starts a service signals the
// process it started: a container's runtime its PID 1 (`docker kill -s USR2`, `docker stop`,
// Kubernetes), an init like tini its one child, systemd its main process (`systemctl reload`), PM2
// the process it runs (`pm2 sendSignal`). When that process runs package.json's scripts (`CMD ["npm",
// "start"]`, `npx fastify-hot-reload start`, `pm2 start npm -- start`, `node --run start`), the
// signals stop there: npm, yarn, pnpm and Node's own task runner pass no SIGUSR2 or SIGHUP on (as
// PID 1 the kernel drops them; otherwise they end the runner), and all but Yarn 4 do not pass on a
// SIGTERM sent to them alone either (npm ends without waiting for the app; `node --run` as PID 1
// ignores it, and the container's runtime kills everything at its timeout): the app is killed
// undrained. Nothing inside the app can fix that; it can say so at start. Read from /proc (Linux):
// our ancestors, parent first, up to PID 1.
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'

export interface ProcessInfo {
  pid: number
  ppid: number
  /** The command line (as /proc shows it: a process title replaces it with one string). */
  command: string[]
}

export interface SignalsBlocked {
  /** What runs the script: npm, yarn, pnpm or `node --run`. */
  manager: string
  /** Its pid: 1, or that of a child of PID 1 or of PM2. */
  managerPid: number
  /** What started it when it is not PID 1 itself: PM2, or PID 1's program (tini, docker-init, systemd...). */
  startedBy?: string
}

const PACKAGE_MANAGERS: Record<string, string> = {
  npm: 'npm', 'npm-cli.js': 'npm',
  yarn: 'yarn', yarnpkg: 'yarn', 'yarn.js': 'yarn', 'yarn.cjs': 'yarn',
  pnpm: 'pnpm', 'pnpm.js': 'pnpm', 'pnpm.cjs': 'pnpm'
}
const NODE = /^node(js)?[\d.]*$/
/** Ancestors read at most (a pid namespace is rarely deeper; a loop cannot run for ever). */
const MAX_DEPTH = 32

/** The program's name: a title's first word ("npm start"), or the script node runs (node /usr/bin/npm). */
function programOf (command: string[]): string[] {
  const first = command[0]?.trim().split(/\s+/)[0] ?? ''
  const names = [basename(first)]
  if (NODE.test(names[0]) && command[1] !== undefined) names.push(basename(command[1]))
  return names
}

/**
 * Node's task runner (Node 22+): `node [options] --run <script>`. Node's own options come before
 * the script; the scan stops at the first word that is not an option (a script path, or an
 * option's separate value: then it says no, and no warning is better than a wrong one).
 */
function runsNodeTaskRunner (command: string[]): boolean {
  if (command.length < 2 || !NODE.test(basename(command[0]))) return false
  for (const word of command.slice(1)) {
    if (word === '--run' || word.startsWith('--run=')) return true
    if (word === '--' || !word.startsWith('-')) return false
  }
  return false
}

/** npm, yarn, pnpm or `node --run` when `command` runs package.json's scripts with one of them, else undefined. */
export function packageManagerOf (command: string[]): string | undefined {
  for (const name of programOf(command)) {
    const manager = PACKAGE_MANAGERS[name]
    if (manager !== undefined) return manager
  }
  return runsNodeTaskRunner(command) ? 'node --run' : undefined
}

/** PM2's daemon, by the title it gives itself ("PM2 v7.0.4: God Daemon (/root/.pm2)"). */
const PM2_DAEMON = /^PM2 v[\d.]+: God/

/** What signals `ancestor` on the service's behalf: PM2's daemon, or else PID 1 (a container's init, systemd). */
function starterOf (ancestor: ProcessInfo, ancestors: ProcessInfo[]): string | undefined {
  const parent = ancestors.find((candidate) => candidate.pid === ancestor.ppid)
  if (parent !== undefined && PM2_DAEMON.test(parent.command[0] ?? '')) return 'PM2'
  if (ancestor.ppid !== 1) return undefined
  return parent === undefined ? 'pid 1' : programOf(parent.command)[0]
}

/**
 * Pure: whether a package manager stands where the service's signals arrive: it is PID 1, or what
 * PID 1 (a container's init, systemd) or PM2 (`pm2 start npm -- start`) started and signals. Under
 * a shell or nodemon it is not: the app's own pid gets the signals there. `ancestors` goes from our
 * parent up to PID 1.
 */
export function signalsBlocked (ancestors: ProcessInfo[]): SignalsBlocked | undefined {
  // The outermost package manager where the signals arrive: one deeper down is out of their way.
  for (const ancestor of [...ancestors].reverse()) {
    const manager = packageManagerOf(ancestor.command)
    if (manager === undefined) continue
    if (ancestor.pid === 1) return { manager, managerPid: 1 }
    const startedBy = starterOf(ancestor, ancestors)
    if (startedBy !== undefined) return { manager, managerPid: ancestor.pid, startedBy }
  }
  return undefined
}

/** Our ancestors from /proc, parent first, up to PID 1 ([] where there is no /proc). */
export function readAncestors (from = process.ppid): ProcessInfo[] {
  const ancestors: ProcessInfo[] = []
  let pid = from
  while (pid > 0 && ancestors.length < MAX_DEPTH) {
    const info = readProcess(pid)
    if (info === undefined) break
    ancestors.push(info)
    if (pid === 1) break
    pid = info.ppid
  }
  return ancestors
}

function readProcess (pid: number): ProcessInfo | undefined {
  try {
    // The name in parentheses may hold spaces and parentheses: the fields start after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((part) => part !== '')
    return Number.isInteger(ppid) ? { pid, ppid, command } : undefined
  } catch {
    return undefined
  }
}

/** This process's case: read from /proc at the call (Linux; elsewhere nothing is found). */
export function signalsBlockedHere (): SignalsBlocked | undefined {
  return signalsBlocked(readAncestors())
}

/** What to tell the user. */
export function describeSignalsBlocked (blocked: SignalsBlocked): string {
  const cmd = JSON.stringify([...blocked.manager.split(' '), 'start']).replaceAll(',', ', ')
  const where = blocked.startedBy === undefined
    ? `${blocked.manager} is PID 1 (a container's main process, as with CMD ${cmd})`
    : `${blocked.manager} (pid ${blocked.managerPid}) is the process that ${blocked.startedBy} started and signals`
  return `${where}: the signals meant for the service reach ${blocked.manager}, not the app; it passes no SIGUSR2 or SIGHUP on, ` +
    'and npm, pnpm, Yarn 1 and node --run do not pass on a SIGTERM sent to them alone (docker stop, Kubernetes, systemd\'s KillMode=mixed) either: ' +
    'the app is then killed undrained. Start the app itself (node app.js), ' +
    'or the supervisor by its path (node_modules/.bin/fastify-hot-reload start), not through npm, npx, yarn, pnpm or node --run'
}

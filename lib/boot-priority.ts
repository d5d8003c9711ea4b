// A successor boots at a lower CPU priority than the generation that serves meanwhile, and gets
// its priority back once its app has listened. Booting is CPU-heavy (loading and compiling the
// app's modules) and on a busy machine it takes the cores from the requests being answered: the
// reload's latency tail (BENCHMARKS.md, "Calm reloads").
//
// Linux has two knobs, and which one counts depends on the machine:
// - with the scheduler's autogroups (on where the process sits in the root cpu cgroup, as on most
//   desktops and VMs), each session is scheduled as one group, whatever its threads' niceness: a
//   supervised worker (a session of its own) is lowered through /proc/<pid>/autogroup, which a
//   process may set back to its own value (0 or more) without any privilege;
// - otherwise (containers, systemd services with CPU accounting) the niceness of each thread
//   counts; getting it back needs the right to raise a priority (root with CAP_SYS_NICE, or
//   RLIMIT_NICE), so without it the threads are left alone.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'

/** CAP_SYS_NICE, bit 23 of the capability sets in /proc/<pid>/status. */
const CAP_SYS_NICE = 23n
const LOWEST = 19
/** Without CAP_SYS_ADMIN the kernel takes one autogroup change per 100 ms, machine-wide (EAGAIN). */
const AUTOGROUP_RETRY_MS = 110
const AUTOGROUP_ATTEMPTS = 20
/**
 * A lowered boot that waits for a CPU most of the time makes hardly any progress: every core is
 * busy at our priority. It gets our priority back then, instead of holding the reload up. Checked
 * every WATCH_MS from the time its main thread ran and waited to run (/proc/<pid>/schedstat):
 * starved, STARVED_WINDOWS windows in a row.
 */
const WATCH_MS = 100
const STARVED_WINDOWS = 3
const STARVED_WAIT_PER_RUN = 2
const STARVED_MIN_WAIT_NS = 30e6

/** Whether this process may set a thread back to niceness `nice` after lowering it (Linux's rules). */
export function mayRaiseTo (nice: number, { status, limits } = ownProcFiles()): boolean {
  if (status === undefined || limits === undefined) return false
  const effective = /^CapEff:\s*([0-9a-f]+)$/mi.exec(status)
  if (effective !== null && ((BigInt('0x' + effective[1]) >> CAP_SYS_NICE) & 1n) === 1n) return true
  // RLIMIT_NICE lets a process go down to niceness 20 - limit.
  const limit = /^Max nice priority\s+(\S+)/m.exec(limits)
  if (limit === null) return false
  const soft = limit[1] === 'unlimited' ? Infinity : Number(limit[1])
  return 20 - soft <= nice
}

/** The niceness of `pid`'s autogroup, when it has one of its own (not ours); undefined otherwise. */
export function ownAutogroupNice (child: string | undefined, ours: string | undefined): number | undefined {
  if (child === undefined || child === ours) return undefined
  const match = /^\S+ nice (-?\d+)\s*$/.exec(child)
  return match === null ? undefined : Number(match[1])
}

/** What mayRaiseTo reads: this process's capabilities and limits (undefined where there is no /proc). */
export interface ProcFiles {
  status: string | undefined
  limits: string | undefined
}

function ownProcFiles (): ProcFiles {
  return { status: readProc('/proc/self/status'), limits: readProc('/proc/self/limits') }
}

function readProc (file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
}

function threadsOf (pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number).filter(Number.isInteger)
  } catch {
    return []
  }
}

function setThreads (pid: number, nice: number): void {
  for (const tid of threadsOf(pid)) {
    try {
      setPriority(tid, nice)
    } catch {
      // A thread that has just ended.
    }
  }
}

/** Sets a child's autogroup to `nice`, again and again while the kernel says not now; gives up once the child is gone. */
class AutogroupWriter {
  private wanted: number | undefined
  private timer: NodeJS.Timeout | undefined
  private attempts = 0

  constructor (private readonly pid: number) {}

  set (nice: number): void {
    this.wanted = nice
    this.attempts = 0
    if (this.timer === undefined) this.write()
  }

  private write (): void {
    this.timer = undefined
    if (this.wanted === undefined) return
    try {
      writeFileSync(`/proc/${this.pid}/autogroup`, String(this.wanted))
      this.wanted = undefined
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++this.attempts >= AUTOGROUP_ATTEMPTS) return
      this.timer = setTimeout(() => this.write(), AUTOGROUP_RETRY_MS).unref()
    }
  }
}

/** Its main thread's time on a CPU and waiting for one, in ns; undefined where the kernel does not say. */
export function schedStat (text: string | undefined): { runNs: number, waitNs: number } | undefined {
  const fields = text?.trim().split(/\s+/).map(Number)
  if (fields === undefined || fields.length < 2 || !fields.every(Number.isFinite)) return undefined
  return { runNs: fields[0], waitNs: fields[1] }
}

/** Calls `starved` once the child, window after window, waited for a CPU far longer than it ran. */
function watchStarvation (pid: number, starved: () => void): NodeJS.Timeout | undefined {
  let last = schedStat(readProc(`/proc/${pid}/schedstat`))
  if (last === undefined) return undefined
  let inARow = 0
  return setInterval(() => {
    const now = schedStat(readProc(`/proc/${pid}/schedstat`))
    if (now === undefined || last === undefined) return
    const ran = now.runNs - last.runNs
    const waited = now.waitNs - last.waitNs
    last = now
    inARow = waited >= STARVED_MIN_WAIT_NS && waited > STARVED_WAIT_PER_RUN * ran ? inARow + 1 : 0
    if (inARow >= STARVED_WINDOWS) starved()
  }, WATCH_MS).unref()
}

export interface BootPriority {
  /** The child gets our priority back (once; later calls do nothing). */
  restore: () => void
}

const UNCHANGED: BootPriority = { restore: () => {} }

/**
 * Lowers the child by `by` niceness steps while it boots, by whichever knobs we can turn back
 * afterwards. It gets our priority back once starved (every core busy serving: a lowered boot would
 * hardly advance), or after `maxMs` at the latest.
 */
export function lowerWhileBooting (pid: number | undefined, by: number, maxMs: number): BootPriority {
  if (pid === undefined || by <= 0 || process.platform !== 'linux') return UNCHANGED
  const ours = getPriority()
  const group = ownAutogroupNice(readProc(`/proc/${pid}/autogroup`), readProc('/proc/self/autogroup'))
  // A negative niceness cannot be set back without the right to raise one.
  const autogroup = group !== undefined && (group >= 0 || mayRaiseTo(group)) ? new AutogroupWriter(pid) : undefined
  const lowerThreads = mayRaiseTo(ours)
  if (autogroup === undefined && !lowerThreads) return UNCHANGED
  autogroup?.set(Math.min(LOWEST, (group as number) + by))
  const lowered = Math.min(LOWEST, ours + by)
  if (lowerThreads) setThreads(pid, lowered)
  // Node starts its helper threads (V8's platform workers, libuv's pool) during its own startup,
  // some perhaps before the line above; threads started later inherit from their starter.
  const again = lowerThreads ? setTimeout(() => setThreads(pid, lowered), 50).unref() : undefined
  let restored = false
  const restore = (): void => {
    if (restored) return
    restored = true
    clearTimeout(again)
    clearTimeout(deadline)
    clearInterval(watch)
    if (autogroup !== undefined) autogroup.set(group as number)
    if (lowerThreads) setThreads(pid, ours)
  }
  const deadline = setTimeout(restore, maxMs).unref()
  const watch = watchStarvation(pid, restore)
  return { restore }
}

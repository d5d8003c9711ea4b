// A standalone service's pid file (for systemd PIDFile= and the reload command), written
// atomically, and beside it the outcome of the last reload, so that `fastify-hot-reload reload
// --pid-file` can tell whether the reload it asked for worked.
import { closeSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import type { WireReloadResult } from './reload-result'

function writeAtomically (path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`
  writeFileSync(temporary, text)
  renameSync(temporary, path)
}

/**
 * Why a pid file cannot be kept at `path`, or null when it can. Tried for real, with the temporary
 * name writePidFile uses: permission bits say nothing for root, who still cannot create a file under
 * a regular file, in /proc, or on a read-only mount.
 */
export function pidFileProblem (path: string): string | null {
  const dir = dirname(path)
  try {
    if (!statSync(dir).isDirectory()) return `${dir} is not a directory`
  } catch (err) {
    return `directory ${dir} is missing (${(err as NodeJS.ErrnoException).code ?? 'no access'})`
  }
  const temporary = `${path}.${process.pid}.tmp`
  try {
    closeSync(openSync(temporary, 'w'))
  } catch (err) {
    return `directory ${dir} is not writable (${(err as NodeJS.ErrnoException).code ?? String(err)})`
  }
  try { unlinkSync(temporary) } catch {}
  return null
}

export function reloadRecordPath (pidFile: string): string {
  return `${pidFile}.reload.json`
}

export function writePidFile (path: string, pid: number): void {
  writeAtomically(path, `${pid}\n`)
}

export function readPidFile (path: string): number | null {
  try {
    const text = readFileSync(path, 'utf8').trim()
    return /^[1-9]\d*$/.test(text) ? Number(text) : null
  } catch {
    return null
  }
}

/** On shutdown: remove the pid file, unless a newer generation already wrote its own pid. */
export function removePidFileIfOurs (path: string, pid: number): void {
  if (readPidFile(path) !== pid) return
  try { unlinkSync(path) } catch {}
  try { unlinkSync(reloadRecordPath(path)) } catch {}
}

/** The outcome of the last reload, in the one wire form, with who ran it and when it finished (ms since the epoch). */
export type ReloadRecord = WireReloadResult & {
  fromPid: number
  finishedAt: number
  /** How long the new generation is on probation (0: none). */
  probationMs?: number
  /** It crashed within its probation, and the generation before serves again (why). */
  rolledBack?: string
  /** Which generation serves again then, and its pid (the serving worker's, under a supervisor). */
  servesAgain?: { generation: number, pid: number }
}

export function writeReloadRecord (pidFile: string, record: ReloadRecord): void {
  writeAtomically(reloadRecordPath(pidFile), JSON.stringify(record) + '\n')
}

export function readReloadRecord (pidFile: string): ReloadRecord | null {
  try {
    return JSON.parse(readFileSync(reloadRecordPath(pidFile), 'utf8')) as ReloadRecord
  } catch {
    return null
  }
}

/** Whether a process with this pid exists (ours or another user's). */
export function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists, as another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

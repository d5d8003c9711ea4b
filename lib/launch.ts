// How this process was launched, captured at load: the successor is started the same way, from the
// logical working directory, so that a `current -> releases/vN` switch is picked up.
import { statSync } from 'node:fs'
import { isAbsolute, relative, resolve, sep } from 'node:path'

export interface Launch {
  execPath: string
  execArgv: string[]
  args: string[]
  cwd: string
}

function sameDirectory (a: string, b: string): boolean {
  try {
    const one = statSync(a)
    const two = statSync(b)
    return one.dev === two.dev && one.ino === two.ino
  } catch {
    return false
  }
}

/** $PWD when it named the working directory at start (it may go through symlinks), else the real cwd. */
export function logicalCwd (pwd: string | undefined, realCwd: string): string {
  if (pwd === undefined || !isAbsolute(pwd)) return realCwd
  // `..` after a symlink means one thing to the kernel and another once normalized: check the
  // normalized path, the one the successor will get.
  const normalized = resolve(pwd)
  return sameDirectory(normalized, realCwd) ? normalized : realCwd
}

/** Node resolves the script against the real cwd; rebase it on the logical one. */
export function rebaseScript (script: string, realCwd: string, cwd: string): string {
  if (cwd === realCwd || !isAbsolute(script)) return script
  const inside = relative(realCwd, script)
  if (inside === '' || inside === '..' || inside.startsWith('..' + sep) || isAbsolute(inside)) return script
  return resolve(cwd, inside)
}

export function captureLaunch (): Launch {
  const realCwd = process.cwd()
  const cwd = logicalCwd(process.env.PWD, realCwd)
  const [script, ...rest] = process.argv.slice(1)
  return {
    execPath: process.execPath,
    execArgv: [...process.execArgv],
    args: script === undefined ? [] : [rebaseScript(script, realCwd, cwd), ...rest],
    cwd
  }
}

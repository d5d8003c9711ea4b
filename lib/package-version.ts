// This package's version, read from its package.json once, at load: `--version` prints it, a worker
// says it in its 'ready', and the supervisor's status gives both. The package can be upgraded under
// a running service (a reload then runs the new version's plugin), but a supervisor keeps running
// the version it started with until it is restarted: status shows which runs where.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

function readVersion (): string {
  try {
    // dist/lib/package-version.js → the package's own package.json.
    const { version } = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: unknown }
    return typeof version === 'string' ? version : 'unknown'
  } catch {
    return 'unknown'
  }
}

export const PACKAGE_VERSION = readVersion()

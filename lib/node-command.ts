// Where the app's script is in a Node command line. Node's own options may take their value as the
// next argument (`--import tsx`, `-r ./preload.js`): that value is not the script.

/** Node's options (20 to 26) whose value may follow as a separate argument, from `node --help`. */
const TAKE_A_VALUE = new Set([
  '-C', '--conditions', '-r', '--require', '--import', '--loader', '--experimental-loader', '--env-file', '--env-file-if-exists',
  '--input-type', '--title', '--disable-warning', '--dns-result-order', '--unhandled-rejections', '--redirect-warnings',
  '--openssl-config', '--tls-cipher-list', '--tls-keylog', '--icu-data-dir', '--use-largepages', '--disable-proto',
  '--secure-heap', '--secure-heap-min', '--max-http-header-size', '--max-old-space-size-percentage', '--v8-pool-size',
  '--localstorage-file', '--allow-fs-read', '--allow-fs-write', '--diagnostic-dir', '--report-filename', '--report-signal',
  '--report-dir', '--report-directory', '--cpu-prof-dir', '--cpu-prof-interval', '--cpu-prof-name', '--heap-prof-dir',
  '--heap-prof-interval', '--heap-prof-name', '--heapsnapshot-near-heap-limit', '--heapsnapshot-signal',
  '--trace-event-categories', '--trace-event-file-pattern', '--trace-require-module', '--inspect-port', '--debug-port', '--inspect-publish-uid',
  '--network-family-autoselection-attempt-timeout', '--experimental-config-file', '--experimental-default-type',
  '--experimental-package-map', '--experimental-policy', '--policy-integrity', '--experimental-sea-config', '--build-sea',
  '--build-snapshot-config', '--snapshot-blob', '--watch-path', '--watch-kill-signal', '--process-timeout', '--vfs-load'
])

/** Options after which Node runs no script file (the code is on the command line, or a package script). */
const NO_SCRIPT = new Set(['-e', '--eval', '-p', '--print', '--run', '-i', '--interactive'])

/**
 * The index in `args` (Node's arguments, after its binary) of the script it runs, or -1 when it runs
 * none (`-e`, `-p`, no file at all).
 */
export function scriptIndex (args: readonly string[]): number {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--') return i + 1 < args.length ? i + 1 : -1
    // `-` is the script read from stdin: no file.
    if (arg === '-') return -1
    if (!arg.startsWith('-')) return i
    const name = arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg
    if (NO_SCRIPT.has(name)) return -1
    if (!arg.includes('=') && TAKE_A_VALUE.has(name)) i++
  }
  return -1
}

/** Package runners that start node as a child of their own, from their stdio only: a channel to them stops there. */
const RUNNERS: ReadonlyMap<string, string> = new Map([
  ['npm', 'npm'], ['npx', 'npx'], ['pnpm', 'pnpm'], ['pnpx', 'pnpx'], ['yarn', 'yarn'], ['yarnpkg', 'yarn'],
  ['npm-cli.js', 'npm'], ['npx-cli.js', 'npx'], ['pnpm.cjs', 'pnpm'], ['yarn.js', 'yarn'], ['yarn.cjs', 'yarn']
])

/** The package runner a command starts (`npm start`, `node …/npm-cli.js start`), if it is one. */
export function packageRunner (execPath: string, args: readonly string[]): string | undefined {
  const program = baseName(execPath)
  if (RUNNERS.has(program)) return RUNNERS.get(program)
  if (!/^node(\.exe)?$/.test(program)) return undefined
  const index = scriptIndex(args)
  return index === -1 ? undefined : RUNNERS.get(baseName(args[index]))
}

function baseName (file: string): string {
  return file.slice(Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\')) + 1)
}

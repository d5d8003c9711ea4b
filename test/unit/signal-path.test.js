'use strict'
// Whether a package manager stands where a container's signals arrive (lib/signal-path.ts): the
// pure decision over a list of ancestors, and the ancestors as /proc gives them.
const { test } = require('tap')
const { signalsBlocked, packageManagerOf, readAncestors } = require('../../dist/lib/signal-path')

const proc = (pid, ppid, ...command) => ({ pid, ppid, command })
// Our parent first, up to PID 1 (sh -c "node app.js", as npm runs a script).
const sh = proc(20, 7, 'sh', '-c', 'node app.js')

test('the package manager from its command line: a process title, or the script node runs', async (t) => {
  t.equal(packageManagerOf(['npm start']), 'npm', 'npm sets its title: one string')
  t.equal(packageManagerOf(['node', '/usr/local/bin/npm', 'start']), 'npm')
  t.equal(packageManagerOf(['/usr/local/bin/node', '/usr/local/lib/node_modules/npm/bin/npm-cli.js', 'run', 'start']), 'npm')
  t.equal(packageManagerOf(['npm exec fastify-hot-reload start']), 'npm', 'npx is npm exec')
  t.equal(packageManagerOf(['node', '/opt/yarn/bin/yarn.js', 'start']), 'yarn')
  t.equal(packageManagerOf(['pnpm', 'start']), 'pnpm')
  t.equal(packageManagerOf(['node', 'app.js']), undefined)
  t.equal(packageManagerOf(['node', 'npm-tools/app.js']), undefined, 'a script that only has npm in a directory name')
  t.equal(packageManagerOf(['/bin/bash']), undefined)
  t.equal(packageManagerOf(['node', '--run', 'start']), 'node --run', 'Node\'s task runner (22+)')
  t.equal(packageManagerOf(['/usr/local/bin/node', '--env-file=.env', '--run=start']), 'node --run', 'after other options, --run=<script>')
  t.equal(packageManagerOf(['node', 'app.js', '--run', 'start']), undefined, '--run given to the app, after its script')
  t.equal(packageManagerOf(['node', '--', '--run']), undefined, 'after --, a script named --run')
  t.equal(packageManagerOf(['tsx', '--run', 'start']), undefined, 'not node')
  t.equal(packageManagerOf([]), undefined)
})

test('npm as the container\'s main process (PID 1): blocked', async (t) => {
  t.same(signalsBlocked([proc(20, 1, 'sh', '-c', 'node app.js'), proc(1, 0, 'npm start')]), { manager: 'npm', managerPid: 1 })
  t.same(signalsBlocked([proc(1, 0, 'node', '/usr/local/bin/yarn', 'start')]), { manager: 'yarn', managerPid: 1 }, 'yarn ran node directly')
  t.same(signalsBlocked([sh, proc(7, 1, 'npm run serve'), proc(1, 0, 'yarn', 'start')]), { manager: 'yarn', managerPid: 1 }, 'npm run by yarn as PID 1: yarn is where the signals stop')
  t.same(signalsBlocked([proc(20, 1, 'sh', '-c', 'node app.js'), proc(1, 0, 'node', '--run', 'start')]), { manager: 'node --run', managerPid: 1 }, 'CMD ["node", "--run", "start"]')
  t.same(signalsBlocked([sh, proc(7, 1, '/usr/local/bin/node', '--run', 'start'), proc(1, 0, 'tini', '--', 'node', '--run', 'start')]), { manager: 'node --run', managerPid: 7, startedBy: 'tini' }, 'node --run under tini')
})

test('npm as what PID 1 started and signals (docker run --init, systemd\'s ExecStart=npx ...): blocked', async (t) => {
  t.same(signalsBlocked([sh, proc(7, 1, 'npm start'), proc(1, 0, '/sbin/docker-init', '--', 'npm', 'start')]), { manager: 'npm', managerPid: 7, startedBy: 'docker-init' })
  t.same(signalsBlocked([sh, proc(7, 1, 'npm start'), proc(1, 0, 'tini', '--', 'npm', 'start')]), { manager: 'npm', managerPid: 7, startedBy: 'tini' })
  t.same(signalsBlocked([sh, proc(7, 1, 'pnpm start'), proc(1, 0, '/usr/bin/dumb-init', 'pnpm', 'start')]), { manager: 'pnpm', managerPid: 7, startedBy: 'dumb-init' })
  t.same(signalsBlocked([sh, proc(7, 1, 'npm exec fastify-hot-reload start'), proc(1, 0, '/lib/systemd/systemd', '--system')]), { manager: 'npm', managerPid: 7, startedBy: 'systemd' }, 'npx under systemd')
  t.same(signalsBlocked([sh, proc(7, 1, 'npm start')]), { manager: 'npm', managerPid: 7, startedBy: 'pid 1' }, 'PID 1 could not be read')
  t.same(signalsBlocked([sh, proc(7, 6, 'npm start'), proc(6, 1, 'PM2 v7.0.4: God Daemon (/root/.pm2)'), proc(1, 0, '/sbin/init')]), { manager: 'npm', managerPid: 7, startedBy: 'PM2' }, 'pm2 start npm -- start: PM2 signals npm')
})

test('not blocked: the app is the main process, or npm runs under a shell or a process manager', async (t) => {
  t.equal(signalsBlocked([]), undefined, 'no ancestors (PID 1 itself, or no /proc)')
  t.equal(signalsBlocked([proc(1, 0, '/sbin/docker-init', '--', 'node', 'app.js')]), undefined, 'the app under an init')
  // npm start in a terminal: the user signals the app's own pid (README).
  t.equal(signalsBlocked([sh, proc(7, 5, 'npm start'), proc(5, 1, '-bash'), proc(1, 0, '/sbin/init')]), undefined, 'npm under a shell')
  t.equal(signalsBlocked([sh, proc(7, 6, 'node', 'app.js'), proc(6, 1, 'PM2 v7.0.4: God Daemon (/root/.pm2)'), proc(1, 0, '/sbin/init')]), undefined, 'the app itself under PM2')
  // The nearest package manager decides: npm start run by a script that yarn started under a shell.
  t.equal(signalsBlocked([sh, proc(7, 6, 'npm start'), proc(6, 5, 'node', '/usr/bin/yarn', 'dev'), proc(5, 1, '-bash'), proc(1, 0, '/sbin/init')]), undefined, 'nested, under a shell')
})

test('readAncestors: this process\'s parent first, up to PID 1, as /proc has them (Linux)', async (t) => {
  const ancestors = readAncestors()
  t.ok(ancestors.length >= 1, 'at least the parent')
  t.equal(ancestors[0].pid, process.ppid, 'the parent first')
  for (let i = 0; i + 1 < ancestors.length; i++) t.equal(ancestors[i].ppid, ancestors[i + 1].pid, `${ancestors[i].pid}'s parent is next`)
  t.equal(ancestors.at(-1).pid, 1, 'ends at PID 1')
  t.ok(ancestors.every((p) => Array.isArray(p.command)), 'with command lines')
  t.same(readAncestors(2 ** 22 + 12345), [], 'no such process: nothing')
})

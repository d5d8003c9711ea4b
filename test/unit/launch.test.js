'use strict'
// lib/launch.ts: the logical working directory ($PWD through a `current -> releases/vN` symlink) and
// the script path rebased onto it, so that a successor picks up a release switch.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { logicalCwd, rebaseScript, startedArgs, startedEnv } = require('../../dist/lib/launch')

// <tmp>/releases/v1, <tmp>/releases/v2, <tmp>/current -> releases/v1
function releases (t) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-launch-')))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.mkdirSync(path.join(dir, 'releases', 'v1'), { recursive: true })
  fs.mkdirSync(path.join(dir, 'releases', 'v2'), { recursive: true })
  fs.symlinkSync(path.join('releases', 'v1'), path.join(dir, 'current'))
  return { dir, current: path.join(dir, 'current'), v1: fs.realpathSync(path.join(dir, 'releases', 'v1')), v2: path.join(dir, 'releases', 'v2') }
}

test('logicalCwd: a PWD through the current symlink is kept', async (t) => {
  const { current, v1 } = releases(t)
  t.not(current, v1)
  t.equal(logicalCwd(current, v1), current, 'the symlink path')
  t.equal(logicalCwd(current + '/', v1), current, 'a trailing slash is normalized away')
  t.equal(logicalCwd(v1, v1), v1, 'a PWD that is the real cwd')
})

test('logicalCwd: any other PWD gives the real cwd', async (t) => {
  const { dir, current, v1, v2 } = releases(t)
  t.equal(logicalCwd(dir, v1), v1, 'a PWD naming another directory (the parent)')
  t.equal(logicalCwd(v2, v1), v1, 'a PWD naming another release')
  t.equal(logicalCwd(path.join(dir, 'missing'), v1), v1, 'a PWD naming nothing')
  t.equal(logicalCwd('current', v1), v1, 'a relative PWD')
  t.equal(logicalCwd(path.relative(process.cwd(), current), v1), v1, 'a relative PWD that does reach the symlink')
  t.equal(logicalCwd('', v1), v1, 'an empty PWD')
  t.equal(logicalCwd(undefined, v1), v1, 'no PWD')
})

test('logicalCwd: after the symlink moves on, the old PWD no longer names the real cwd', async (t) => {
  const { dir, current, v1, v2 } = releases(t)
  fs.symlinkSync(path.join('releases', 'v2'), path.join(dir, 'current.next'))
  fs.renameSync(path.join(dir, 'current.next'), current)
  t.equal(logicalCwd(current, v1), v1, 'current is v2 now: v1 keeps its real path')
  t.equal(logicalCwd(current, fs.realpathSync(v2)), current)
})

test('rebaseScript', async (t) => {
  const { current, v1 } = releases(t)
  t.equal(rebaseScript(path.join(v1, 'app.js'), v1, current), path.join(current, 'app.js'), 'a script in the real cwd')
  t.equal(rebaseScript(path.join(v1, 'dist', 'server.js'), v1, current), path.join(current, 'dist', 'server.js'), 'in a subdirectory')
  t.equal(rebaseScript('/elsewhere/app.js', v1, current), '/elsewhere/app.js', 'a script elsewhere is left alone')
  t.equal(rebaseScript(v1 + '-old/app.js', v1, current), v1 + '-old/app.js', 'a sibling whose name starts like the real cwd is left alone')
  t.equal(rebaseScript(path.join(v1, 'app.js'), v1, v1), path.join(v1, 'app.js'), 'no symlink: unchanged')
  t.equal(rebaseScript(v1, v1, current), v1, 'the cwd itself is not a script under it')
})

test('logicalCwd: a PWD with `..` counts only if its normalized form is the real cwd', async (t) => {
  const { dir, current, v1 } = releases(t)
  // The kernel reads current/.. as the parent of releases/v1 (releases); normalized it is dir.
  t.equal(logicalCwd(path.join(current, '..', 'current'), v1), current, 'current/../current normalizes to current, which is v1')
  t.equal(logicalCwd(current + '/../releases/v1', v1), v1, 'a form that names v1 only through the symlink is not trusted: real cwd')
  t.equal(logicalCwd(dir + '/releases/v2/../v1', v1), v1, 'normalized to releases/v1 itself')
})

test('rebaseScript when the real cwd is /', async (t) => {
  t.equal(rebaseScript('/app.js', '/', '/srv/current'), '/srv/current/app.js', 'a script at the root is rebased')
  t.equal(rebaseScript('/srv/app.js', '/', '/srv/current'), '/srv/current/srv/app.js', 'any absolute script is under /')
  t.equal(rebaseScript('app.js', '/', '/srv/current'), 'app.js', 'a relative script is left alone')
})

test('startedArgs: the kernel\'s command line, whatever the app did to process.argv', async (t) => {
  // fastify-cli empties process.argv before the app loads.
  t.same(startedArgs(['node', '/app/node_modules/.bin/fastify', 'start', '-p', '0', 'app.js'], [], ['node', '/app/node_modules/.bin/fastify']),
    ['/app/node_modules/.bin/fastify', 'start', '-p', '0', 'app.js'])
  t.same(startedArgs(['node', '--env-file=.env', 'app.js', 'x'], ['--env-file=.env'], ['node', '/srv/app.js', 'x']), ['app.js', 'x'], 'Node flags are skipped')
  t.same(startedArgs(null, [], ['node', '/srv/app.js', 'x']), ['/srv/app.js', 'x'], 'no /proc: process.argv')
  t.same(startedArgs(['node /srv/app.js'], [], ['node', '/srv/app.js']), ['/srv/app.js'], 'a process.title that overwrote the command line: process.argv')
  // PM2 fork mode: a title over the container's command line, the rest of it NULs.
  t.same(startedArgs(['node /srv/app.js', '', '', ''], [], ['node', '/pm2/lib/ProcessContainerFork.js']), ['/pm2/lib/ProcessContainerFork.js'],
    'a title with NUL padding: process.argv')
  t.same(startedArgs(['node', '--inspect', 'app.js'], ['--require', 'x'], ['node', '/srv/app.js']), ['/srv/app.js'], 'flags that disagree: process.argv')
})

test('startedEnv: the environment as started, parsed; else a copy of process.env', async (t) => {
  t.same(startedEnv(['A=1', 'B=x=y', 'EMPTY=', 'broken'], {}), { A: '1', B: 'x=y', EMPTY: '' })
  t.same(startedEnv(null, { A: '1', GONE: undefined }), { A: '1' })
})

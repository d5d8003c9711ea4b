'use strict'
// `node app.js | cat` in a terminal, then Ctrl-C: the terminal signals the whole process group, cat
// ends at once, and the service's shutdown lines go to a pipe nobody reads. pino writes stdout
// asynchronously and, at exit, writes what is left synchronously; sonic-boom 4 (pino 10's) retried
// that write for ever on EPIPE, and the service hung at exit, deaf to every signal but SIGKILL.
const { test } = require('tap')
const { Service, startSupervised, tempDir, writeRelease, sleep, waitUntilGone } = require('./helpers/processes')

const PLUGIN = { idleGrace: 300, drainTimeout: 5000, readyTimeout: 20000 }
const canExecve = typeof process.execve === 'function'

const modes = {
  standalone: (t, dir) => Service.start(t, { cwd: dir }),
  supervised: (t, dir) => startSupervised(t, { dir }).service,
  // The pid the user started becomes the supervisor (Node 22.15+); its worker shares the pipe.
  ...(canExecve ? { keepPid: (t, dir) => Service.start(t, { cwd: dir, env: { FASTIFY_HOT_RELOAD_KEEP_PID: '1', XDG_RUNTIME_DIR: tempDir(t) } }) } : {})
}

for (const [mode, start] of Object.entries(modes)) {
  test(`${mode}: SIGINT with a log pipe whose reader is gone still ends the service at once`, async (t) => {
    const dir = tempDir(t)
    writeRelease(dir, { version: 1, plugin: PLUGIN })
    const service = start(t, dir)
    await service.waitForEvent('serving')
    // The reader goes, as cat does at a Ctrl-C: every write to stdout from now on fails with EPIPE.
    service.child.stdout.destroy()
    process.kill(service.pid, 'SIGINT')
    const ended = await Promise.race([service.exit, sleep(10000).then(() => 'still running 10 s later')])
    t.same(ended, { code: 0, signal: null }, 'the service stopped by itself, with exit code 0')
    for (const pid of service.pids) await waitUntilGone(pid, 5000).catch(() => {})
    t.same(service.alive(), [], 'no process of it is left (a worker included)')
  })
}

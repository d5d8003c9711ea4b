'use strict'
// Starts a service as a real Node process, reads the JSON log lines of every generation (they all
// share its stdout), and ends every process it saw by pid: after a standalone handoff the live
// generation is no longer our child.
const { execFile, spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { untrackChildren } = require('./untracked-children')

const REPO = path.resolve(__dirname, '../..')
const FIXTURE_APP = path.join(REPO, 'test/fixtures/app.js')
const BIN = path.join(REPO, 'bin/fastify-hot-reload.js')

// Node 22.1+: the generations the plugin starts get V8's compile cache in os.tmpdir() unless
// NODE_COMPILE_CACHE is set (lib/compile-cache.ts). Every process the tests start keeps it in the
// suite's own (ignored) directory instead; test/compile-cache.test.js unsets it to see the default.
process.env.NODE_COMPILE_CACHE ??= path.join(REPO, '.tap', 'compile-cache')
untrackChildren()

/** True while pid runs (a zombie does not count). */
function isAlive (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

/** A second guard before killing by pid: only processes that run node, python3 or our tools. */
function isOurs (pid) {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return /node|python3|unshare|systemd-socket-activate/.test(cmdline)
  } catch {
    return false
  }
}

/**
 * Resolves with the first truthy value of `check()`, asked every `intervalMs` (give a check that
 * starts a process, such as the status command, a longer interval: asked every 25 ms it keeps a
 * core busy with Node start-ups). `what` may be a function, asked at the timeout (a log's tail then).
 */
async function waitFor (check, timeoutMs, what, intervalMs = 25) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`)
    await sleep(intervalMs)
  }
}

function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function waitUntilGone (pid, timeoutMs = 15000) {
  return waitFor(() => !isAlive(pid), timeoutMs, `pid ${pid} to exit`)
}

function fdCount (pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length
}

/** A temporary directory removed at teardown. */
function tempDir (t, prefix = 'fhr-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * An executable file, for `successor.execPath`: the plugin checks at registration that it is there;
 * the test removes it before the reload (a Node binary uninstalled under a running service).
 */
function vanishingExecutable (t) {
  const file = path.join(tempDir(t), 'node')
  fs.writeFileSync(file, '#!/bin/sh\nexit 1\n', { mode: 0o755 })
  return file
}

/**
 * A copy of this package as an app's node_modules holds it (its dist and package.json, its own
 * dependencies through a link), for a test to take away or to give another version; the fixture app
 * loads it when FHR_PLUGIN or its release's `pluginFrom` names it.
 */
function installedCopy (t, { version } = {}) {
  const installed = path.join(tempDir(t), 'fastify-hot-reload')
  fs.mkdirSync(path.join(installed, 'test', 'fixtures'), { recursive: true })
  fs.cpSync(path.join(REPO, 'dist'), path.join(installed, 'dist'), { recursive: true })
  const manifest = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'))
  fs.writeFileSync(path.join(installed, 'package.json'), JSON.stringify({ ...manifest, ...(version === undefined ? {} : { version }) }))
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(installed, 'node_modules'))
  // The fixture app loads its event logger from the plugin's checkout.
  fs.copyFileSync(path.join(REPO, 'test', 'fixtures', 'log-events.js'), path.join(installed, 'test', 'fixtures', 'log-events.js'))
  return installed
}

function writeRelease (dir, release) {
  fs.writeFileSync(path.join(dir, 'release.json'), JSON.stringify(release))
}

class Service {
  constructor (child, deadlineMs, trackLogPids) {
    this.child = child
    this.pid = child.pid
    this.pids = new Set([child.pid])
    this.lines = []
    this.stderr = ''
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    // 'close' comes once stdout and stderr are drained too (all generations share them).
    this.closed = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })))
    this.deadline = setTimeout(() => this.stop(), deadlineMs)
    this.deadline.unref()
    let pending = ''
    const onData = (chunk) => {
      pending += chunk
      let index
      while ((index = pending.indexOf('\n')) !== -1) {
        const text = pending.slice(0, index)
        pending = pending.slice(index + 1)
        let line
        try { line = JSON.parse(text) } catch { line = { raw: text } }
        // The line as written, for what parsing hides (a key written twice); not enumerable, so comparisons skip it.
        Object.defineProperty(line, 'text', { value: text })
        if (trackLogPids) {
          // Every line that announces a new process carries its pid as a field.
          for (const field of ['pid', 'successorPid', 'workerPid']) {
            // Never 0 (or 1): kill(0) would signal this test's own process group.
            if (typeof line[field] === 'number' && line[field] > 1) this.pids.add(line[field])
          }
        }
        this.lines.push(line)
      }
    }
    child.stdout.setEncoding('utf8').on('data', onData)
    child.stderr.setEncoding('utf8').on('data', (chunk) => { this.stderr += chunk; onData(chunk) })
  }

  /**
   * Starts `node <script>` in `cwd`; give every test's processes a deadline. Pids found in the logs
   * are tracked and ended at teardown, unless `trackLogPids` is false (a PID namespace: its pids
   * mean other processes out here).
   */
  static start (t, { cwd, script = FIXTURE_APP, env = {}, command, args, deadlineMs = 90000, stdio, trackLogPids = true } = {}) {
    const child = spawn(command || process.execPath, args || [script], {
      cwd,
      // Standalone unless a test asks: keepPid would make the first pid the supervisor (Node 22.15+).
      env: { ...process.env, PWD: cwd, FHR_PLUGIN: REPO, FASTIFY_HOT_RELOAD_KEEP_PID: '0', ...env },
      stdio: stdio || ['ignore', 'pipe', 'pipe']
    })
    const service = new Service(child, deadlineMs, trackLogPids)
    service.trackLogPids = trackLogPids
    t.teardown(() => service.stop())
    return service
  }

  find (predicate) {
    return this.lines.find(predicate)
  }

  filter (predicate) {
    return this.lines.filter(predicate)
  }

  /**
   * Resolves with the first line matching `predicate`. Lines are only ever appended, so each poll
   * reads only the lines that came since the last one: a service under load logs every request, and
   * scanning all of them every 25 ms kept the test process busy on a 2-core machine.
   */
  waitForLine (predicate, timeoutMs = 20000, what = 'a log line') {
    let read = 0
    return waitFor(() => {
      for (; read < this.lines.length; read++) if (predicate(this.lines[read])) return this.lines[read]
      return undefined
    }, timeoutMs, () => `${what}; log so far:\n${this.tail()}`)
  }

  /** Resolves with every line matching `predicate` once there are at least `count` of them (read as they come, as above). */
  async waitForLines (predicate, count, timeoutMs = 20000, what = `${count} log lines`) {
    let read = 0
    const matching = []
    await waitFor(() => {
      for (; read < this.lines.length; read++) if (predicate(this.lines[read])) matching.push(this.lines[read])
      return matching.length >= count
    }, timeoutMs, () => `${what}; log so far:\n${this.tail()}`)
    return matching
  }

  tail (n = 15) {
    return this.lines.slice(-n).map((line) => line.raw || `${line.pid} ${line.msg}`).join('\n')
  }

  /** Resolves with the address of the first "Server listening at" line. */
  async listening (timeoutMs = 20000) {
    const line = await this.waitForLine((l) => /Server listening at/.test(l.msg || ''), timeoutMs, 'the server to listen')
    const url = /listening at (\S+)/.exec(line.msg)[1]
    return url.startsWith('http') ? new URL(url) : url
  }

  /** Lines where a process reported a public fastify.hotReload event (the fixture apps log each one). */
  events (name) {
    return this.lines.filter((l) => l.hotReloadEvent === name)
  }

  /** Waits for a process to report the event `name` (matching `predicate`); resolves with its line. */
  waitForEvent (name, predicate = () => true, timeoutMs = 20000) {
    return this.waitForLine((l) => l.hotReloadEvent === name && predicate(l), timeoutMs, `the ${name} event`)
  }

  /**
   * Waits until generation `n` serves; returns its (first) pid. Standalone, that is its 'serving'
   * event. Under a supervisor, the worker's event comes at the commit, before the old workers were
   * told to drain (a new connection may still reach one): there it is once the supervisor says
   * 'generation-serving', when they no longer accept.
   */
  async generationServing (n, timeoutMs = 20000) {
    const line = await this.waitForEvent('serving', (l) => l.generation === n, timeoutMs)
    if (this.find((l) => l.supervisor !== undefined) !== undefined) {
      await this.waitForLine((l) => l.supervisor === 'generation-serving' && l.generation === n, timeoutMs, `the supervisor to say generation ${n} serves`)
    }
    return line.pid
  }

  alive () {
    return [...this.pids].filter(isAlive)
  }

  /**
   * Standalone chained reloads: for each version up to `to`, writes its release, sends SIGUSR2 to
   * the serving pid and waits for that generation to serve and the previous one to be gone.
   * Returns the last generation's pid.
   */
  async reloadThrough (dir, to, plugin, { pauseMs = 300 } = {}) {
    let pid = this.pid
    for (let version = 2; version <= to; version++) {
      writeRelease(dir, { version, plugin })
      process.kill(pid, 'SIGUSR2')
      const next = await this.generationServing(version)
      await waitUntilGone(pid)
      pid = next
      await sleep(pauseMs)
    }
    return pid
  }

  async stop () {
    clearTimeout(this.deadline)
    // Children that have not logged yet (a worker still booting) are ended too.
    if (this.trackLogPids) for (const pid of [...this.pids]) for (const child of descendantsOf(pid)) this.pids.add(child)
    for (const pid of this.pids) {
      if (isAlive(pid) && isOurs(pid)) { try { process.kill(pid, 'SIGKILL') } catch {} }
    }
    await Promise.all([...this.pids].map((pid) => waitUntilGone(pid, 5000).catch(() => {})))
  }
}

/** Runs the `fastify-hot-reload` command; resolves with its exit code and output (60 s deadline). */
function cli (args, options = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60000, ...options }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

/**
 * Starts `fastify-hot-reload start` on `script` (the fixture app by default) in `dir` (a new
 * temporary directory by default), with its control socket at <dir>/ctl/app.sock unless `args`
 * says otherwise.
 */
function startSupervised (t, { dir, extra = [], env, command, args, script = FIXTURE_APP, beforeScript = [] } = {}) {
  dir = dir || tempDir(t)
  const control = path.join(dir, 'ctl', 'app.sock')
  const service = Service.start(t, {
    cwd: dir,
    env,
    command,
    args: args || [BIN, 'start', '--control', control, '--ready-timeout', '10000', '--drain-timeout', '5000', ...extra, '--', process.execPath, ...beforeScript, script]
  })
  return { dir, control, service }
}

/** The { host, port } of the service's first listening line. */
async function servingTarget (service) {
  const url = await service.listening()
  return { host: url.hostname, port: Number(url.port) }
}

/**
 * A real sd_notify receiver: a unix datagram socket (python3, since Node has none) that prints each
 * message. Returns the socket path and a function listing the messages so far.
 */
async function notifyReceiver (t, dir) {
  const socketPath = path.join(dir, 'notify.sock')
  const receiver = Service.start(t, {
    cwd: dir,
    command: 'python3',
    args: ['-u', '-c', [
      'import socket',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      `s.bind(${JSON.stringify(socketPath)})`,
      'print("bound", flush=True)',
      'while True:',
      '    print("MSG " + s.recv(4096).decode().replace(chr(10), "|"), flush=True)'
    ].join('\n')]
  })
  await receiver.waitForLine((l) => l.raw === 'bound')
  const messages = () => receiver.lines.filter((l) => (l.raw || '').startsWith('MSG ')).map((l) => l.raw.slice(4))
  return { socketPath, messages }
}

/** Processes whose parent is pid, with their state letter, from /proc. */
function childrenOf (pid) {
  const children = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(ppid) === pid) children.push({ pid: Number(entry), state })
    } catch {}
  }
  return children
}

/** Whether pid runs the supervisor (`node .../bin/fastify-hot-reload.js start ...`, as keepPid execs it); false once it is gone. */
function runsSupervisor (pid) {
  try { return /fastify-hot-reload\.js\0start\0/.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')) } catch { return false }
}

/** Every process below pid, from /proc. */
function descendantsOf (pid) {
  const found = []
  const queue = [pid]
  while (queue.length > 0) {
    for (const { pid: child } of childrenOf(queue.shift())) {
      found.push(child)
      queue.push(child)
    }
  }
  return found
}

/** The pids of `pid`'s children. */
const childPids = (pid) => childrenOf(pid).map((c) => c.pid)

module.exports = { REPO, FIXTURE_APP, BIN, Service, cli, startSupervised, servingTarget, notifyReceiver, childrenOf, childPids, descendantsOf, runsSupervisor, isAlive, waitFor, waitUntilGone, sleep, fdCount, tempDir, installedCopy, vanishingExecutable, writeRelease }

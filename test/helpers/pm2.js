'use strict'
// Real PM2 (the registry's, a devDependency) for a test: a daemon of its own in <dir>/.pm2, killed at
// teardown (SIGKILL if `pm2 kill` left it), and the app's JSON log lines as PM2 wrote them.
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { REPO, isAlive } = require('./processes')

const PM2_BIN = path.join(REPO, 'node_modules/.bin/pm2')

/**
 * PM2 run from `dir` with the test's environment plus `env`: `pm2(...args)` resolves with
 * { code, stdout, stderr } (60 s deadline), `logLines(name)` with the app's stdout log, parsed.
 */
function usePm2 (t, dir, env = {}) {
  const home = path.join(dir, '.pm2')
  const fullEnv = { ...process.env, PM2_HOME: home, PWD: dir, FHR_PLUGIN: REPO, ...env }
  const pm2 = (...args) => new Promise((resolve) => {
    execFile(PM2_BIN, args, { cwd: dir, env: fullEnv, timeout: 60000 }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }))
  })
  t.teardown(async () => {
    const daemon = Number(fs.readFileSync(path.join(home, 'pm2.pid'), { encoding: 'utf8', flag: 'a+' }))
    await pm2('kill')
    if (daemon > 0 && isAlive(daemon)) process.kill(daemon, 'SIGKILL')
  })
  const logLines = (name) => {
    const file = path.join(home, 'logs', `${name}-out.log`)
    if (!fs.existsSync(file)) return []
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((text) => { try { return JSON.parse(text) } catch { return {} } })
  }
  return { pm2, logLines }
}

module.exports = { usePm2 }

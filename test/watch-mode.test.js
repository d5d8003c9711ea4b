'use strict'
// `node --watch app.js`, the development loop built into Node: the watcher runs the app as its
// child, restarts it when a file the app loaded changes (it learns them from the child over IPC),
// and ends it at its own SIGTERM. With the plugin the child may become the supervisor (keepPid,
// Node 22.15+): the files it loaded before that are still reported, a change still restarts the
// app, and stopping the watcher leaves nothing behind.
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const { REPO, Service, descendantsOf, runsSupervisor, tempDir, waitFor, waitUntilGone } = require('./helpers/processes')
const { freePort } = require('../tools/free-port')

const APP = `
const Fastify = require(require.resolve('fastify', { paths: [process.env.FHR_PLUGIN] }))
const routes = require('./routes')
const app = Fastify({ logger: true })
app.register(require(process.env.FHR_PLUGIN))
app.get('/', async () => ({ answer: routes.answer, pid: process.pid }))
app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
`

async function answer (port) {
  try { return await (await fetch(`http://127.0.0.1:${port}/`)).json() } catch { return undefined }
}

test('node --watch: a change to a file the app required restarts it with the new code; SIGTERM to the watcher ends it all', async (t) => {
  const dir = tempDir(t)
  fs.writeFileSync(path.join(dir, 'app.js'), APP)
  fs.writeFileSync(path.join(dir, 'routes.js'), 'module.exports = { answer: 1 }\n')
  const port = await freePort()
  const service = Service.start(t, {
    cwd: dir,
    args: ['--watch', 'app.js'],
    env: { FASTIFY_HOT_RELOAD_KEEP_PID: '1', PORT: String(port), FHR_PLUGIN: REPO }
  })
  const first = await waitFor(async () => (await answer(port))?.answer === 1 || undefined, 20000, 'the app to answer')
  t.ok(first, 'the app answers')
  // Where Node has execve, the child the watcher started is the supervisor now (Node 20: standalone).
  if (typeof process.execve === 'function') t.ok(descendantsOf(service.pid).some(runsSupervisor), 'the watcher\'s child became the supervisor')
  fs.writeFileSync(path.join(dir, 'routes.js'), 'module.exports = { answer: 2 }\n')
  await waitFor(async () => (await answer(port))?.answer === 2 || undefined, 20000, 'the app restarted on the new routes.js')
  t.pass('the watcher saw the change to routes.js and restarted the app')
  const everything = [service.pid, ...descendantsOf(service.pid)]
  process.kill(service.pid, 'SIGTERM')
  await service.exit
  for (const pid of everything) await waitUntilGone(pid, 10000)
  t.pass('the watcher and everything it started are gone')
})

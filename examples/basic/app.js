'use strict'
// The demo's service: an ordinary Fastify app with the plugin registered. Its version is read from
// the VERSION file next to it at boot, so writing a new VERSION and reloading "deploys" new code.
const fs = require('node:fs')
const path = require('node:path')
const Fastify = require('fastify')
const hotReload = require('fastify-hot-reload')

const version = fs.readFileSync(path.join(__dirname, 'VERSION'), 'utf8').trim()
const app = Fastify({ logger: { level: process.env.LOG_LEVEL || 'info' } })

app.register(hotReload, { idleGrace: 500, drainTimeout: 10000 })
app.get('/', async () => ({ hello: 'world', version, pid: process.pid }))

app.listen({ port: Number(process.env.PORT || 3000), host: process.env.HOST || '127.0.0.1' })
  .catch((err) => {
    app.log.error(err)
    process.exit(1)
  })

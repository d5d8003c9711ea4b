'use strict'
// Shared by the fault-injection tests: a standalone service under load, and plain HTTP calls.
const http = require('node:http')
const { Service, tempDir, writeRelease, sleep } = require('../helpers/processes')
const { startLoad } = require('../helpers/load')

function request (target, { method = 'GET', path = '/', timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...target, path, method, agent: false, timeout: timeoutMs }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => {
        let json
        try { json = JSON.parse(body) } catch { json = body }
        resolve({ status: response.statusCode, body: json })
      })
      response.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/** A standalone service on release 1 with `plugin` options, and load started on it. */
async function serviceUnderLoad (t, { plugin, release = {}, load = { connections: 10, keepAlive: true } }) {
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin, ...release })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const target = { host: url.hostname, port: Number(url.port) }
  const loads = (Array.isArray(load) ? load : [load]).map((options) => startLoad(t, target, options))
  await sleep(200)
  return { dir, service, target, loads, stopLoads: () => Promise.all(loads.map((l) => l.stop())) }
}

module.exports = { request, serviceUnderLoad }

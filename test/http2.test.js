'use strict'
// HTTP/2 across reloads. A draining generation sends each session away with GOAWAY only once the
// streams its client had sent have arrived, so no stream is refused: these clients do NOT retry a
// refused stream (REFUSED_STREAM) and count it as failed, like any other error. Every stream's
// outcome is counted. (HTTP/2 sessions are never handed over: each reload, a client opens one new
// session on the new generation.)
const { execFile } = require('node:child_process')
const path = require('node:path')
const { test } = require('tap')
const { h2Client } = require('../tools/h2-load')
const { Service, tempDir, writeRelease, waitUntilGone, sleep } = require('./helpers/processes')

const RELOADS = 5

async function reloadsUnderLoad (t, { tls, pauseMs }) {
  const dir = tempDir(t)
  // A long drainTimeout: the old generations must end by GOAWAY, not by the deadline. An idleGrace
  // shorter than /slow: an HTTP/2 connection is not idle while its streams are open.
  const plugin = { idleGrace: 200, probation: 300, drainTimeout: 30000 }
  let https
  let connectOptions
  if (tls) {
    const key = path.join(dir, 'key.pem')
    const cert = path.join(dir, 'cert.pem')
    await new Promise((resolve, reject) => execFile('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'],
      { timeout: 30000 }, (err) => err ? reject(err) : resolve()))
    https = { key, cert }
    connectOptions = { rejectUnauthorized: false }
  }
  const release = (version) => writeRelease(dir, { version, plugin, http2: true, https })
  release(1)
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const origin = `${tls ? 'https' : 'http'}://127.0.0.1:${url.port}`
  const clients = [0, 1].map(() => h2Client(origin, { loops: 6, slowLoops: 2, connectOptions, pauseMs }))
  await sleep(300)
  let pid = service.pid
  for (let version = 2; version <= RELOADS + 1; version++) {
    release(version)
    process.kill(pid, 'SIGUSR2')
    const next = await service.generationServing(version)
    const started = Date.now()
    await waitUntilGone(pid, 10000)
    t.ok(Date.now() - started < 10000, `generation ${version - 1} drained in ${Date.now() - started} ms, long before drainTimeout`)
    pid = next
    await sleep(300)
  }
  const all = await Promise.all(clients.map((client) => client.stop()))
  for (const [i, stats] of all.entries()) {
    t.comment(`client ${i}: ${JSON.stringify(stats)}`)
    t.equal(stats.failed, 0, `client ${i}: no stream failed, none refused (${JSON.stringify(stats.errors)})`)
    t.ok(stats.ok > 100 && stats.slowOk > 10, `client ${i}: short and slow streams answered (${stats.ok}, ${stats.slowOk})`)
    t.equal(stats.sessions, RELOADS + 1, `client ${i}: one new session per reload`)
    t.same(Object.keys(stats.versions).sort(), Array.from({ length: RELOADS + 1 }, (_, v) => String(v + 1)), `client ${i}: every generation answered`)
  }
  const drains = service.events('drained').filter((l) => typeof l.cutConnections === 'number')
  t.equal(drains.length, RELOADS, 'every old generation drained')
  t.same(drains.map((l) => l.cutConnections), Array(RELOADS).fill(0), 'no drain cut a connection')
}

test(`HTTP/2 (h2c): ${RELOADS} chained reloads under load, a client that does not retry sees 0 failed streams`, (t) => reloadsUnderLoad(t, { tls: false }))

test(`HTTP/2 over TLS: ${RELOADS} chained reloads under load, a client that does not retry sees 0 failed streams`, (t) => reloadsUnderLoad(t, { tls: true }))

// A client that waits on a timer (setTimeout 0) before its next stream: on loopback that pause
// outlasts the drain's PING round trips, so only the quiet wait before the GOAWAY keeps its
// next stream from crossing it.
test(`HTTP/2 (h2c), a client that pauses on a timer before each next stream: ${RELOADS} chained reloads, 0 failed streams`, (t) => reloadsUnderLoad(t, { tls: false, pauseMs: 0 }))

test('HTTP/2 over TLS with allowHTTP1: an HTTP/1.1 client\'s long request in flight finishes with 200 across a reload (its TLS connection is busy, not idle)', async (t) => {
  const https = require('node:https')
  const dir = tempDir(t)
  const key = path.join(dir, 'key.pem')
  const cert = path.join(dir, 'cert.pem')
  await new Promise((resolve, reject) => execFile('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'],
    { timeout: 30000 }, (err) => err ? reject(err) : resolve()))
  const plugin = { idleGrace: 300 }
  const release = (version) => writeRelease(dir, { version, plugin, http2: true, https: { key, cert, allowHTTP1: true } })
  release(1)
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const slow = new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: Number(url.port), path: '/slow?ms=1500', agent: false, rejectUnauthorized: false }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode, version: response.httpVersion, body: JSON.parse(body) }))
    }).on('error', reject)
  })
  await sleep(300)
  release(2)
  process.kill(service.pid, 'SIGUSR2')
  await service.generationServing(2)
  const answer = await slow
  t.equal(answer.version, '1.1', 'the client spoke HTTP/1.1')
  t.equal(answer.status, 200, 'its request in flight at the reload succeeded')
  t.equal(answer.body.pid, service.pid, 'in the old process')
  await waitUntilGone(service.pid)
})

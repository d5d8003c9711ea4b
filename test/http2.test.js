'use strict'
// HTTP/2 has no `Connection: close`: a draining generation sends GOAWAY, the client opens its next
// session on the new generation. A stream that crosses the GOAWAY is refused (REFUSED_STREAM: not
// processed, safe to retry, RFC 9113 §8.7); this client retries those as browsers and gRPC do, and
// counts them. (HTTP/2 sessions are never handed over.)
const http2 = require('node:http2')
const { test } = require('tap')
const { Service, tempDir, writeRelease, waitUntilGone, sleep } = require('./helpers/processes')

/** `streams` request loops sharing one HTTP/2 session, reconnecting when the server sends it away. */
function h2Load (origin, streams) {
  const stats = { ok: 0, failed: 0, refusedAndRetried: 0, errors: {}, sessions: 0, versions: {} }
  let session
  const connect = () => {
    stats.sessions++
    session = http2.connect(origin)
    session.on('error', () => {})
  }
  const once = () => new Promise((resolve) => {
    if (session.closed || session.destroyed) connect()
    const request = session.request({ ':path': '/' })
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (chunk) => { body += chunk })
    request.on('end', () => {
      try {
        const version = JSON.parse(body).version
        stats.versions[version] = (stats.versions[version] || 0) + 1
        stats.ok++
      } catch {
        stats.failed++
      }
      resolve()
    })
    request.on('error', (err) => {
      if (request.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) {
        stats.refusedAndRetried++
        return resolve(once())
      }
      stats.failed++
      stats.errors[err.code || err.message] = (stats.errors[err.code || err.message] || 0) + 1
      resolve()
    })
  })
  let running = true
  connect()
  const loops = Array.from({ length: streams }, async () => { while (running) await once() })
  return {
    async stop () {
      running = false
      await Promise.all(loops)
      session.close()
      return stats
    }
  }
}

test('HTTP/2 (h2c): 3 reloads under load, 0 failed; each reload sends the client to a new session at once', async (t) => {
  const dir = tempDir(t)
  // A long drainTimeout: the old generations must end by GOAWAY, not by the deadline.
  const plugin = { idleGrace: 300, probation: 300, drainTimeout: 30000 }
  writeRelease(dir, { version: 1, plugin, http2: true })
  const service = Service.start(t, { cwd: dir })
  const url = await service.listening()
  const load = h2Load(`http://127.0.0.1:${url.port}`, 5)
  await sleep(300)
  let pid = service.pid
  for (let version = 2; version <= 4; version++) {
    writeRelease(dir, { version, plugin, http2: true })
    process.kill(pid, 'SIGUSR2')
    const next = await service.generationServing(version)
    const started = Date.now()
    await waitUntilGone(pid, 10000)
    t.ok(Date.now() - started < 10000, `generation ${version - 1} drained in ${Date.now() - started} ms, long before drainTimeout`)
    pid = next
    await sleep(200)
  }
  const stats = await load.stop()
  t.comment(JSON.stringify(stats))
  t.equal(stats.failed, 0, `no request failed (${JSON.stringify(stats.errors)})`)
  t.ok(stats.refusedAndRetried <= 5 * 3, `streams refused at a GOAWAY: at most one per stream loop per reload (${stats.refusedAndRetried})`)
  t.equal(stats.sessions, 4, 'one new session per reload')
  t.same(Object.keys(stats.versions).sort(), ['1', '2', '3', '4'], 'every generation answered')
  const cut = service.filter((l) => /drainTimeout/.test(l.msg || ''))
  t.same(cut, [], 'no drain hit its deadline')
})

'use strict'
// HTTP/2 load that records every stream's outcome, for the tests and the bench. A client is one
// session with `loops` request loops on it (each sends its next request as soon as the last ended)
// and `slowLoops` more on a slow route, so that streams are open across a drain. It does NOT retry a
// refused stream (REFUSED_STREAM): that counts as failed, like any other error. A session the server
// sent away (GOAWAY) is not used again: the next request opens a new one, as browsers and curl do.
const http2 = require('node:http2')

function h2Client (origin, { loops, slowLoops = 0, slowPath = '/slow?ms=400', connectOptions, onResult, pauseMs }) {
  const stats = { ok: 0, slowOk: 0, failed: 0, errors: {}, sessions: 0, versions: {} }
  let session
  const connect = () => {
    stats.sessions++
    session = http2.connect(origin, connectOptions)
    session.on('error', () => {})
  }
  const fail = (key) => {
    stats.failed++
    stats.errors[key] = (stats.errors[key] || 0) + 1
  }
  const once = (urlPath) => new Promise((resolve) => {
    const start = performance.now()
    let finished = false
    const done = (ok) => {
      if (finished) return
      finished = true
      onResult?.({ start, end: performance.now(), ok, failed: !ok })
      resolve()
    }
    if (session.closed || session.destroyed) connect()
    let request
    try {
      request = session.request({ ':path': urlPath })
    } catch (err) {
      fail(err.code || err.message)
      return done(false)
    }
    let status = 0
    let body = ''
    request.setEncoding('utf8')
    request.on('response', (headers) => { status = headers[':status'] })
    request.on('data', (chunk) => { body += chunk })
    request.on('end', () => {
      try {
        const answer = JSON.parse(body)
        if (status !== 200) throw new Error(`status ${status}`)
        stats.versions[answer.version] = (stats.versions[answer.version] || 0) + 1
        if (answer.slow) stats.slowOk++
        else stats.ok++
      } catch (err) {
        fail(`bad answer: ${err.message}`)
        return done(false)
      }
      done(true)
    })
    // REFUSED_STREAM included: not retried, a failure here.
    request.on('error', (err) => {
      fail(request.rstCode ? `${err.code} rstCode ${request.rstCode}` : (err.code || err.message))
      done(false)
    })
  })
  let running = true
  connect()
  const all = [
    // `pauseMs`: each loop waits that long on a timer (0 included) before its next request.
    ...Array.from({ length: loops }, async () => {
      while (running) {
        await once('/')
        if (pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, pauseMs))
      }
    }),
    ...Array.from({ length: slowLoops }, async () => { while (running) await once(slowPath) })
  ]
  return {
    async stop () {
      running = false
      await Promise.all(all)
      session.close()
      return stats
    }
  }
}

module.exports = { h2Client }

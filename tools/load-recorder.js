'use strict'
// Puts load on a service and records the outcome of every single request (autocannon undercounts
// resets during a reload). Keep-alive mode reuses `connections` sockets; per-request mode opens a
// new connection for every request.
const http = require('node:http')
const net = require('node:net')

class Load {
  /**
   * @param {object} target { host, port } or { socketPath }
   * @param {object} options { connections, keepAlive, path, timeoutMs, pauseMs, onResult, scheduling }
   *   scheduling: the agent's choice of a free keep-alive socket, 'lifo' (Node's default) or 'fifo'
   *   (with pauseMs, 'fifo' uses every connection alike; 'lifo' keeps reusing the last freed ones).
   *   onResult({ start, end, ok, failed, status, pid }) is called for every request (times from performance.now(); pid: the
   *   answering process, when the body says it).
   */
  constructor (target, { connections = 30, keepAlive = true, path = '/', timeoutMs = 10000, pauseMs = 0, onResult, scheduling = 'lifo' } = {}) {
    this.target = target
    this.connections = connections
    this.keepAlive = keepAlive
    this.path = path
    this.timeoutMs = timeoutMs
    this.pauseMs = pauseMs
    this.onResult = onResult
    this.stats = { sent: 0, ok: 0, non2xx: 0, failed: 0, errors: {}, failures: [], statuses: {}, versions: {}, pids: new Set(), perPid: {}, socketsOpened: 0 }
    this.running = false
    this.loops = []
    this.agent = new http.Agent({ keepAlive, maxSockets: connections, maxFreeSockets: connections, scheduling })
    const stats = this.stats
    const createConnection = this.agent.createConnection.bind(this.agent)
    this.agent.createConnection = (...args) => {
      stats.socketsOpened++
      return createConnection(...args)
    }
  }

  start () {
    this.running = true
    for (let i = 0; i < this.connections; i++) this.loops.push(this.loop())
    return this
  }

  async loop () {
    while (this.running) {
      await this.once()
      if (this.pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, this.pauseMs))
    }
  }

  once () {
    const stats = this.stats
    stats.sent++
    const start = performance.now()
    return new Promise((resolve) => {
      let done = false
      const finish = (error, status, body) => {
        if (done) return
        done = true
        const end = performance.now()
        let parsed
        if (!error) try { parsed = JSON.parse(body) } catch {}
        this.onResult?.({ start, end, ok: !error && status >= 200 && status < 300, failed: Boolean(error), status, pid: parsed?.pid })
        if (error) {
          stats.failed++
          const code = error.code || error.message
          stats.errors[code] = (stats.errors[code] || 0) + 1
          // The first few, for finding them in the service's logs: when, and whether on a reused keep-alive connection.
          if (stats.failures.length < 20) stats.failures.push({ at: Date.now(), tookMs: Math.round(end - start), code, reused: request.reusedSocket })
        } else {
          stats.statuses[status] = (stats.statuses[status] || 0) + 1
          if (status >= 200 && status < 300) stats.ok++
          else stats.non2xx++
          if (parsed?.version !== undefined) stats.versions[parsed.version] = (stats.versions[parsed.version] || 0) + 1
          if (parsed?.pid !== undefined) {
            stats.pids.add(parsed.pid)
            stats.perPid[parsed.pid] = (stats.perPid[parsed.pid] || 0) + 1
          }
        }
        resolve()
      }
      const headers = this.keepAlive ? {} : { connection: 'close' }
      const request = http.request({ ...this.target, path: this.path, headers, agent: this.agent, timeout: this.timeoutMs }, (response) => {
        let body = ''
        response.setEncoding('utf8')
        response.on('data', (chunk) => { body += chunk })
        response.on('end', () => finish(null, response.statusCode, body))
        response.on('error', (err) => finish(err))
        response.on('aborted', () => finish(new Error('response aborted')))
      })
      request.on('timeout', () => { request.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })) })
      request.on('error', (err) => finish(err))
      request.end()
    })
  }

  /** Ends the load once the requests in flight have their outcome; safe to call again. */
  stop () {
    this.stopping ??= (async () => {
      this.running = false
      await Promise.all(this.loops)
      this.agent.destroy()
      return this.summary()
    })()
    return this.stopping
  }

  summary () {
    const { pids, ...rest } = this.stats
    return { ...rest, pids: [...pids] }
  }
}

/** Sends raw HTTP/1.1 requests on one TCP connection and reads the responses one by one. */
class RawConnection {
  static open (target) {
    return new Promise((resolve, reject) => {
      const socket = net.connect(target, () => resolve(new RawConnection(socket)))
      socket.once('error', reject)
    })
  }

  constructor (socket) {
    this.socket = socket
    this.buffer = Buffer.alloc(0)
    this.closed = false
    this.waiters = []
    socket.on('data', (chunk) => { this.buffer = Buffer.concat([this.buffer, chunk]); this.wake() })
    socket.on('close', () => { this.closed = true; this.wake() })
    socket.on('error', () => {})
  }

  wake () {
    for (const waiter of this.waiters.splice(0)) waiter()
  }

  write (text) {
    this.socket.write(text)
  }

  get (path, extraHeaders = '') {
    this.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extraHeaders}\r\n`)
    return this.readResponse()
  }

  /** Reads one response (Content-Length bodies only, which is what Fastify sends). */
  async readResponse (timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n')
      if (end !== -1) {
        const head = this.buffer.subarray(0, end).toString('latin1').split('\r\n')
        const status = Number(head[0].split(' ')[1])
        const headers = {}
        for (const line of head.slice(1)) {
          const colon = line.indexOf(':')
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
        }
        const length = Number(headers['content-length'] || 0)
        if (this.buffer.length >= end + 4 + length) {
          const body = this.buffer.subarray(end + 4, end + 4 + length).toString('utf8')
          this.buffer = this.buffer.subarray(end + 4 + length)
          return { status, headers, body }
        }
      }
      if (this.closed) throw Object.assign(new Error('connection closed before a whole response'), { code: 'CLOSED' })
      if (Date.now() > deadline) throw new Error('timed out reading a response')
      await new Promise((resolve) => {
        this.waiters.push(resolve)
        setTimeout(resolve, 100)
      })
    }
  }

  close () {
    this.socket.destroy()
  }
}

module.exports = { Load, RawConnection }

'use strict'
// Keep-alive GET requests at a fixed rate, spread evenly over time (autocannon's rate limit sends
// each second's requests in one burst). Raw sockets and a minimal response parser keep the
// client's own CPU small: it shares the machine with the servers it measures.
const net = require('node:net')

const REQUEST = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'

class PacedLoad {
  /** `rate` requests/s (0: as fast as answered) over `connections` keep-alive connections to 127.0.0.1:`port`. */
  constructor ({ port, rate, connections = 10 }) {
    this.port = port
    this.rate = rate
    this.connectionCount = connections
    this.connections = []
    this.completed = 0
    this.failed = 0
    this.sent = 0
    /** Requests that were due while every connection was busy: the server could not keep up. */
    this.late = 0
    this.startedAt = 0
    this.running = false
  }

  async open () {
    for (let i = 0; i < this.connectionCount; i++) this.connections.push(await this.connect())
    this.startedAt = performance.now()
  }

  connect () {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.port, '127.0.0.1')
      socket.setNoDelay(true)
      socket.setEncoding('latin1')
      const connection = { socket, busy: false, buffer: '' }
      socket.on('data', (chunk) => {
        connection.buffer += chunk
        this.parse(connection)
      })
      socket.on('error', () => {})
      socket.on('close', () => {
        if (connection.busy) this.failed++
        connection.busy = true // never used again
        connection.closed = true
      })
      socket.once('connect', () => resolve(connection))
      socket.once('error', reject)
    })
  }

  parse (connection) {
    for (;;) {
      const end = connection.buffer.indexOf('\r\n\r\n')
      if (end === -1) return
      const head = connection.buffer.slice(0, end)
      const length = /\r\ncontent-length: *(\d+)/i.exec(head)
      const total = end + 4 + (length === null ? 0 : Number(length[1]))
      if (connection.buffer.length < total) return
      connection.buffer = connection.buffer.slice(total)
      if (head.startsWith('HTTP/1.1 200')) this.completed++
      else this.failed++
      connection.busy = false
      // Rate 0: closed loop, the next request as soon as the answer is in.
      if (this.rate === 0 && this.running) this.send(connection)
    }
  }

  send (connection) {
    connection.busy = true
    connection.socket.write(REQUEST)
    this.sent++
  }

  /** Sends whatever is due by now; called every millisecond or so. */
  tick (now) {
    if (this.rate === 0) {
      if (!this.running) { this.running = true; for (const c of this.connections) if (!c.busy) this.send(c) }
      return
    }
    const due = Math.floor(((now - this.startedAt) * this.rate) / 1000)
    let next = 0
    while (this.sent < due) {
      let connection
      for (let i = 0; i < this.connections.length; i++) {
        const candidate = this.connections[(next + i) % this.connections.length]
        if (!candidate.busy) { connection = candidate; next = (next + i + 1) % this.connections.length; break }
      }
      if (connection === undefined) {
        this.late += due - this.sent
        this.sent = due
        return
      }
      this.send(connection)
    }
  }

  close () {
    this.running = false
    for (const connection of this.connections) connection.socket.destroy()
  }
}

/** Drives every load's tick from one timer until stop() is called. */
function drive (loads) {
  const timer = setInterval(() => {
    const now = performance.now()
    for (const load of loads) load.tick(now)
  }, 1)
  return { stop: () => clearInterval(timer) }
}

module.exports = { PacedLoad, drive }

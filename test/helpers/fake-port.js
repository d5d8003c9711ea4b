'use strict'
// A ProcessPort (lib/process-port.ts) in memory: the generation's logic and its links run against
// it in-process, with the messages it sends, the exits it asks for and the signals it listens to
// all visible to the test.
const { EventEmitter } = require('node:events')

const KEY = 'fastify-hot-reload'

class FakePort extends EventEmitter {
  constructor ({ pid = 4242, connected = true } = {}) {
    super()
    this.pid = pid
    this.connected = connected
    this.hasChannel = true
    /** Messages sent to the parent, unwrapped, with their handle. */
    this.sent = []
    this.exits = []
    this.disconnects = 0
  }

  off (event, listener) { this.removeListener(event, listener) }

  send (message, handle, callback) {
    if (!this.connected) return callback(new Error('not connected'))
    this.sent.push({ ...message[KEY], handle })
    setImmediate(() => callback(null))
  }

  disconnect () {
    if (!this.connected) return
    this.connected = false
    this.disconnects++
    this.emit('disconnect')
  }

  exit (code) { this.exits.push(code) }

  /** The parent says something (wrapped as on the wire). */
  deliver (message, handle) { this.emit('message', { [KEY]: message }, handle) }

  sentOfType (type) { return this.sent.filter((m) => m.type === type) }
}

module.exports = { FakePort }

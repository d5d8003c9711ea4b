'use strict'
// Clients of long-lived connections that behave as real ones do: WebSocket clients (the `ws`
// library) that reconnect as soon as they are closed, and an EventSource-style client on node:http
// that reconnects after the stream ends and sends Last-Event-ID. Each records what it saw, with
// times, and is stopped at the test's teardown.
const http = require('node:http')
const http2 = require('node:http2')
const net = require('node:net')
const crypto = require('node:crypto')
const WebSocket = require('ws')

/**
 * `count` WebSocket clients of ws://target/path. Each one records every close (code, reason, time)
 * and every greeting (the first message of a connection: the fixture's { version, pid }), and
 * opens a new connection as soon as one closes (after 50 ms when the connection failed).
 */
function webSocketClients (t, target, path, count) {
  const clients = []
  let stopped = false
  for (let i = 0; i < count; i++) {
    const client = { closes: [], greetings: [], errors: [], socket: null }
    const connect = () => {
      if (stopped) return
      const ws = new WebSocket(`ws://${target.host}:${target.port}${path}`)
      client.socket = ws
      let greeted = false
      ws.on('message', (data) => {
        if (greeted) return
        greeted = true
        client.greetings.push({ ...JSON.parse(String(data)), t: Date.now() })
      })
      ws.on('error', (err) => client.errors.push(err.code || err.message))
      ws.on('close', (code, reason) => {
        client.closes.push({ code, reason: String(reason), t: Date.now(), greeted })
        if (!stopped) setTimeout(connect, greeted ? 0 : 50)
      })
    }
    connect()
    clients.push(client)
  }
  const stop = () => {
    stopped = true
    for (const client of clients) client.socket?.terminate()
  }
  t.teardown(stop)
  return { clients, stop }
}

/**
 * An EventSource as the spec describes it: GET with Accept: text/event-stream; events parsed from
 * `id:`, `data:` and `retry:` lines; when the stream ends, a new request after `retry` ms with
 * Last-Event-ID. A reset or an error is recorded (and reconnected after, as browsers do). Over
 * HTTP/1.1 (`agent`: keep-alive reuse as a browser does) or, with `http2`, over HTTP/2 without TLS:
 * one session, a new one once the server has sent it away (GOAWAY).
 */
function eventSource (t, target, path, { agent, http2: overHttp2 = false } = {}) {
  const state = { events: [], requests: [], ends: 0, errors: [], lastId: undefined, retryMs: 1000, sessions: 0 }
  let stopped = false
  let current
  let session
  const request = (headers, onResponse, onError) => {
    if (!overHttp2) {
      current = http.get({ ...target, path, agent: agent || false, headers }, onResponse)
      current.on('error', onError)
      return
    }
    if (session === undefined || session.closed || session.destroyed) {
      state.sessions++
      session = http2.connect(`http://${target.host}:${target.port}`)
      session.on('error', () => {})
    }
    const stream = session.request({ ':path': path, ...headers })
    current = stream
    // An HTTP/2 stream ends cleanly with END_STREAM; reset (RST_STREAM) or a session that dies is an error.
    stream.on('response', () => onResponse(stream))
    stream.on('error', onError)
    stream.on('close', () => { if (stream.rstCode) onError(new Error(`rstCode ${stream.rstCode}`)) })
  }
  const connect = () => {
    if (stopped) return
    const headers = { accept: 'text/event-stream' }
    if (state.lastId !== undefined) headers['last-event-id'] = state.lastId
    state.requests.push({ lastEventId: state.lastId, t: Date.now() })
    let finished = false
    const again = (why) => {
      if (finished) return
      finished = true
      if (stopped) return
      if (why !== 'end') state.errors.push(why)
      else state.ends++
      setTimeout(connect, state.retryMs)
    }
    request(headers, (response) => {
      let pending = ''
      let event = {}
      response.setEncoding('utf8')
      response.on('data', (chunk) => {
        pending += chunk
        let index
        while ((index = pending.indexOf('\n')) !== -1) {
          const line = pending.slice(0, index)
          pending = pending.slice(index + 1)
          if (line === '') {
            if (event.id !== undefined) state.lastId = event.id
            if (event.data !== undefined) state.events.push({ id: event.id, data: JSON.parse(event.data), t: Date.now() })
            event = {}
            continue
          }
          const colon = line.indexOf(':')
          const field = colon === -1 ? line : line.slice(0, colon)
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
          if (field === 'retry' && /^\d+$/.test(value)) state.retryMs = Number(value)
          else if (field === 'id' || field === 'data') event[field] = value
        }
      })
      response.on('end', () => again('end'))
      response.on('aborted', () => again('aborted'))
      response.on('error', (err) => again(err.code || err.message))
    }, (err) => again(err.code || err.message))
  }
  connect()
  const stop = () => {
    stopped = true
    current?.destroy()
    session?.destroy()
  }
  t.teardown(stop)
  return { state, stop }
}

/**
 * A WebSocket client that does the handshake by hand and then never answers: it records the close
 * frame it is sent (code, reason) and whether the server then cut the connection.
 */
function deafWebSocket (target, path) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(target)
    const key = crypto.randomBytes(16).toString('base64')
    const state = { upgraded: false, closeFrame: null, ended: false, buffer: Buffer.alloc(0), socket }
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: ${target.host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`))
    socket.on('data', (chunk) => {
      state.buffer = Buffer.concat([state.buffer, chunk])
      if (!state.upgraded) {
        const end = state.buffer.indexOf('\r\n\r\n')
        if (end === -1) return
        if (!/^HTTP\/1.1 101/.test(state.buffer.toString('latin1', 0, end))) return reject(new Error(`no 101: ${state.buffer}`))
        state.upgraded = true
        state.buffer = state.buffer.subarray(end + 4)
        resolve(state)
      }
      // Unmasked server frames: FIN+opcode, length (< 126 here), payload. 0x8 is close.
      while (state.buffer.length >= 2 && state.buffer.length >= 2 + (state.buffer[1] & 0x7f)) {
        const opcode = state.buffer[0] & 0x0f
        const length = state.buffer[1] & 0x7f
        const payload = state.buffer.subarray(2, 2 + length)
        if (opcode === 0x8) state.closeFrame = { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString(), t: Date.now() }
        state.buffer = state.buffer.subarray(2 + length)
      }
    })
    socket.on('close', () => { state.ended = true; state.endedAt = Date.now() })
    socket.on('error', (err) => { state.error = err.code })
  })
}

/** Counts per `bucketMs` bucket of times: the largest count, and the span from the first to the last. */
function burst (times, bucketMs = 100) {
  const buckets = new Map()
  for (const time of times) buckets.set(Math.floor(time / bucketMs), (buckets.get(Math.floor(time / bucketMs)) || 0) + 1)
  return { peak: Math.max(0, ...buckets.values()), span: times.length === 0 ? 0 : Math.max(...times) - Math.min(...times) }
}

module.exports = { webSocketClients, eventSource, deafWebSocket, burst }

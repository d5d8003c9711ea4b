'use strict'
// The long-lived scenario of the bench: N WebSocket clients (the `ws` library) stay connected while
// the service is reloaded. Each client reconnects as soon as it is closed (after 50 ms when a
// connection attempt fails). Counted: every close by its code (1006 is abnormal: no close frame),
// the failed connection attempts, and the reconnect burst: the most reconnect attempts that fell
// in one 100 ms bucket.
const fs = require('node:fs')
const path = require('node:path')
const WebSocket = require('ws')

const BUCKET_MS = 100

function clients (port, count) {
  const all = []
  const attempts = []
  let stopped = false
  for (let i = 0; i < count; i++) {
    const client = { open: false, closes: [], failed: 0, socket: null }
    const connect = (reconnect) => {
      if (stopped) return
      if (reconnect) attempts.push(performance.now())
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
      client.socket = ws
      let opened = false
      ws.on('open', () => { opened = true; client.open = true })
      ws.on('error', () => {})
      ws.on('close', (code) => {
        client.open = false
        if (opened) client.closes.push({ code, t: performance.now() })
        else client.failed++
        if (!stopped) setTimeout(() => connect(true), opened ? 0 : 50)
      })
    }
    connect(false)
    all.push(client)
  }
  return {
    all,
    attempts,
    allOpen: () => all.every((c) => c.open),
    stop: () => {
      stopped = true
      for (const c of all) c.socket?.terminate()
    }
  }
}

async function waitUntil (check, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return true
}

/** One contender, `config.webSockets` clients, `config.reloads` reloads; the app gets BENCH_WEBSOCKET=1. */
async function longLivedScenario (makeContender, { context, config }) {
  const contender = makeContender()
  const ctx = await context()
  ctx.env = { BENCH_WEBSOCKET: '1' }
  let ws
  try {
    await contender.start(ctx)
    ws = clients(ctx.port, config.webSockets)
    if (!(await waitUntil(ws.allOpen, 30000))) throw new Error(`${contender.name}: not every WebSocket client could connect`)
    const reloads = []
    let notBack = 0
    for (let i = 0; i < config.reloads; i++) {
      fs.writeFileSync(path.join(ctx.dir, 'VERSION'), `${i + 2}\n`)
      const timing = await contender.reload(ctx)
      reloads.push(Math.round(timing.goneMs))
      // Every client back before the next reload (clients still down then are counted).
      if (!(await waitUntil(ws.allOpen, 30000))) notBack++
      await new Promise((resolve) => setTimeout(resolve, config.intervalMs))
    }
    ws.stop()
    const closes = ws.all.flatMap((c) => c.closes)
    const byCode = {}
    for (const { code } of closes) byCode[code] = (byCode[code] || 0) + 1
    const buckets = new Map()
    for (const t of ws.attempts) buckets.set(Math.floor(t / BUCKET_MS), (buckets.get(Math.floor(t / BUCKET_MS)) || 0) + 1)
    const sorted = [...reloads].sort((a, b) => a - b)
    return {
      contender: contender.name,
      project: contender.project,
      clients: config.webSockets,
      reloads: config.reloads,
      closes: closes.length,
      byCode,
      abnormal: byCode[1006] || 0,
      failedAttempts: ws.all.reduce((sum, c) => sum + c.failed, 0),
      reconnects: ws.attempts.length,
      peakReconnectsPer100ms: Math.max(0, ...buckets.values()),
      reloadsNotRecovered: notBack,
      oldGoneMedianMs: sorted[Math.floor(sorted.length / 2)]
    }
  } finally {
    ws?.stop()
    await contender.stop().catch((err) => console.error(`stopping ${contender.name}: ${err.message}`))
    fs.rmSync(ctx.dir, { recursive: true, force: true })
  }
}

function longLivedTable (results) {
  const lines = []
  lines.push('| contender (WebSocket clients) | reloads | closes by code | abnormal closes (1006) | failed connection attempts | peak reconnects per 100 ms | reload → old process gone, median (ms) |')
  lines.push('|---|---|---|---|---|---|---|')
  for (const r of results) {
    const codes = Object.entries(r.byCode).map(([code, n]) => `${code}: ${n}`).join(', ') || '-'
    lines.push(`| ${r.contender} (${r.clients}) | ${r.reloads} | ${codes} | ${r.abnormal}${r.project && r.abnormal > 0 ? ' ✗' : ''} | ${r.failedAttempts} | ${r.peakReconnectsPer100ms} of ${r.clients} | ${r.oldGoneMedianMs} |`)
  }
  return lines.join('\n')
}

module.exports = { longLivedScenario, longLivedTable }

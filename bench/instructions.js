'use strict'
// The plugin's per-request cost in instructions: each server runs under valgrind's callgrind, which
// counts the instructions its process executes (every thread: the JIT's and GC's helpers too), and
// the count is read over windows of a fixed number of requests once the code is warm.
//
// Why beside bench/cost.js: CPU time per request on this shared machine moves by ~4% between two
// identical processes; an instruction count does not depend on what else the machine does. What
// callgrind distorts is time: the app runs ~50x slower, so work on timers (GC is not one: it follows
// allocation) would be charged to ~50x fewer requests than in production. So the timers' share is
// measured on its own (instructions per second with no request) and taken out of each window:
// what is left is what a request costs. Each variant runs as several fresh processes (JIT decisions
// and heap layout differ between processes); the ratio to bare Fastify is taken within each round.
//
//   node bench/instructions.js [--quick] [--rounds N] [--only bare,bare2,defaults,...] [--before <a built checkout>] [--write]
const { execFile, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { promisify } = require('node:util')
const { PacedLoad, drive } = require('./paced-load')
const { variants: costVariants, startServer, withRatios, median } = require('./cost')

const run = promisify(execFile)
const BENCHMARKS = path.join(__dirname, '..', 'BENCHMARKS.md')
const START = '<!-- per-request instructions: written by bench/instructions.js -->'
const END = '<!-- end of per-request instructions -->'
const TARGET = 0.99
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Warm-up runs uninstrumented (faster under valgrind). V8's optimizing compiler takes the request
// path between the 10,000th and the 18,000th request here, a burst of 2-3x the count per request
// for a few thousand requests on its background threads; 20,000 gets past it, and the median of the
// windows leaves out one that still catches a late compile. Measured over 30 windows of 1,000
// after that: bare Fastify 57,286-57,958 per request (±0.6%). One connection: with several, the
// requests one turn of the event loop serves together share its fixed cost, and how many come
// together depends on how fast the load generator runs beside it (±3% between windows at load 16).
const FULL = { rounds: 3, settleMs: 3000, idleMs: 4000, warmupRequests: 20000, windows: 6, maxWindows: 10, windowRequests: 1500, connections: 1 }
const QUICK = { rounds: 1, settleMs: 1000, idleMs: 2000, warmupRequests: 2000, windows: 2, maxWindows: 2, windowRequests: 500, connections: 1 }

/**
 * What is measured. `timersOnly`: only the instructions per second with no request (under-pressure's
 * sampling is a cost per second: per request it depends on the request rate, and under callgrind's
 * slowdown it would be charged to ~50x fewer requests than in production).
 */
function variants (before) {
  return costVariants(before).map((variant) => {
    if (variant.key === 'before') {
      return { ...variant, name: `Fastify + plugin, ${before.label}, underPressure: false (its per-request work alone)`, env: { ...variant.env, BENCH_UNDER_PRESSURE: 'false' } }
    }
    if (variant.key === 'underPressure') return { ...variant, name: `${variant.name}: the defaults before 0.1.0`, timersOnly: true }
    return variant
  })
}

function valgrindAvailable () {
  const probe = spawnSync('valgrind', ['--version'], { encoding: 'utf8' })
  return probe.status === 0 ? probe.stdout.trim() : undefined
}

/** callgrind writes a numbered file per dump; its `summary:` line is the instruction count since the last zero. */
function latestDumpCount (dir) {
  const dumps = fs.readdirSync(dir).filter((name) => /^callgrind\.out\.\d+$/.test(name))
  const last = dumps.sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())).pop()
  if (last === undefined) throw new Error(`no callgrind dump in ${dir}`)
  const summary = /^summary: (\d+)$/m.exec(fs.readFileSync(path.join(dir, last), 'utf8'))
  if (summary === null) throw new Error(`${last}: no summary line`)
  return Number(summary[1])
}

const control = (server, ...args) => run('callgrind_control', [...args, String(server.child.pid)])

async function untilCompleted (load, count, server) {
  while (load.completed < count) {
    if (server.child.exitCode !== null) throw new Error(`${server.variant.name}: exited with code ${server.child.exitCode}`)
    await sleep(5)
  }
}

/** Instructions counted between now and `done()` resolving. */
async function counted (server, done) {
  await control(server, '--zero')
  const startedAt = performance.now()
  const result = await done()
  await control(server, '--dump')
  return { instructions: latestDumpCount(server.dir), seconds: (performance.now() - startedAt) / 1000, result }
}

/**
 * One process: its timers alone first (settled after boot: once load has run, V8's memory reducer
 * collects in the quiet that follows and would be charged to the timers), then warm up, then count
 * windows of requests until the last `windows` of them agree (their middle half within 1%: a late
 * compile of V8's stands out) or `maxWindows` ran.
 */
async function measureProcess (server, config, log) {
  await sleep(config.settleMs)
  await control(server, '--instr=on')
  const idle = await counted(server, () => sleep(config.idleMs))
  await control(server, '--instr=off')
  const idlePerSecond = idle.instructions / idle.seconds
  if (server.variant.timersOnly === true) return { key: server.variant.key, idlePerSecond }
  const load = new PacedLoad({ port: server.port, rate: 0, connections: config.connections })
  await load.open()
  const driver = drive([load])
  const windows = []
  const net = (w) => (w.instructions - idlePerSecond * w.seconds) / w.result
  const last = () => windows.slice(-config.windows).map(net)
  try {
    await untilCompleted(load, config.warmupRequests, server)
    await control(server, '--instr=on')
    while (windows.length < config.maxWindows && (windows.length < config.windows || interquartileSpread(last()) > 0.01)) {
      windows.push(await counted(server, async () => {
        const from = load.completed
        await untilCompleted(load, from + config.windowRequests, server)
        return load.completed - from
      }))
    }
  } finally {
    driver.stop()
    load.close()
  }
  if (load.failed > 0) throw new Error(`${server.variant.name}: ${load.failed} requests failed`)
  log(`bench:   ${server.variant.key}: per request ${windows.map((w) => Math.round(net(w))).join(' ')}; timers ${Math.round(idlePerSecond)}/s`)
  const kept = windows.slice(-config.windows)
  return {
    key: server.variant.key,
    perRequest: median(last()),
    windowSpread: interquartileSpread(last()),
    windowsRun: windows.length,
    gross: median(kept.map((w) => w.instructions / w.result)),
    idlePerSecond
  }
}

/** The middle half of the windows, relative to their median (a late compile's window falls outside it). */
function interquartileSpread (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q) => sorted[Math.round(q * (sorted.length - 1))]
  return (at(0.75) - at(0.25)) / median(values)
}

async function round (list, config, log) {
  const wrap = (dir) => ['valgrind', '-q', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${path.join(dir, 'callgrind.out')}`]
  const servers = []
  try {
    // Started together and measured together: valgrind runs one thread at a time per process, and
    // an instruction count does not care how many share the cores.
    const started = await Promise.allSettled(list.map((variant) => startServer(variant, { wrap, bootTimeoutMs: 300000 })))
    for (const s of started) if (s.status === 'fulfilled') servers.push(s.value)
    const failure = started.find((s) => s.status === 'rejected')
    if (failure !== undefined) throw failure.reason
    return await Promise.all(servers.map((server) => measureProcess(server, config, log)))
  } finally {
    for (const server of servers) await server.stop()
  }
}

const round3 = (n) => Math.round(n * 1000) / 1000

/** Instructions per request of each variant, and bare Fastify's over each (median over rounds, with the spread). */
async function instructionCost ({ quick = false, before, log = () => {}, config: overrides = {}, only } = {}) {
  const valgrind = valgrindAvailable()
  if (valgrind === undefined) return undefined
  const config = { ...(quick ? QUICK : FULL), ...overrides }
  const list = variants(before).filter((v) => only === undefined || only.includes(v.key))
  const rounds = []
  for (let i = 0; i < config.rounds; i++) {
    log(`bench: instructions per request (callgrind), round ${i + 1} of ${config.rounds}...`)
    const result = await round(list, config, log)
    rounds.push(withRatios(result, (r) => r.perRequest))
  }
  const rows = list.map((variant) => {
    const per = rounds.map((r) => r[variant.key])
    const idlePerSecond = Math.round(median(per.map((r) => r.idlePerSecond)))
    if (variant.timersOnly === true) return { key: variant.key, name: variant.name, headline: false, timersOnly: true, idlePerSecond }
    const ratios = per.map((r) => r.ratio)
    return {
      key: variant.key,
      name: variant.name,
      headline: variant.headline === true,
      perRequest: Math.round(median(per.map((r) => r.perRequest))),
      gross: Math.round(median(per.map((r) => r.gross))),
      ratio: round3(median(ratios)),
      ratioMin: round3(Math.min(...ratios)),
      ratioMax: round3(Math.max(...ratios)),
      ratios: ratios.map(round3),
      windowSpread: round3(Math.max(...per.map((r) => r.windowSpread))),
      windowsRun: Math.max(...per.map((r) => r.windowsRun)),
      idlePerSecond
    }
  })
  return { config, quick, valgrind, rows }
}

function instructionTable (cost) {
  const { rounds, warmupRequests, windows, maxWindows, windowRequests, connections } = cost.config
  const how = `instructions the server process executes per request, every thread, counted by ${cost.valgrind} (callgrind) ` +
    `over windows of ${windowRequests} keep-alive requests (${connections === 1 ? 'one connection' : `${connections} connections`}, as fast as answered) after ${warmupRequests} ` +
    `to warm up, the median of the last ${windows} (windows run until those agree within 1%, at most ${maxWindows}), less what the process ` +
    `runs on timers alone in the same time; a fresh process of each variant per round, ${rounds} round${rounds === 1 ? '' : 's'}` +
    (cost.quick ? ' (quick run: a smoke test of the measurement, not a result)' : '')
  const lines = [
    `| per-request instructions (${how}) | instructions per request | bare Fastify's over this | lowest – highest round | middle half of the windows (largest) | with the timers' share under callgrind | timers (instructions per s, no request) |`,
    '|---|---|---|---|---|---|---|'
  ]
  for (const row of cost.rows) {
    const name = row.headline ? `**${row.name}**` : row.name
    if (row.timersOnly) lines.push(`| ${name} | - (a cost per second) | - | - | - | - | ${row.idlePerSecond} |`)
    else lines.push(`| ${name} | ${row.perRequest} | ${row.ratio} | ${row.ratioMin} – ${row.ratioMax} | ${(row.windowSpread * 100).toFixed(1)}% | ${row.gross} | ${row.idlePerSecond} |`)
  }
  return lines.join('\n')
}

/** [what, met] for the target list: the plugin's defaults against bare Fastify, in instructions. */
function instructionTarget (cost) {
  const row = cost.rows.find((r) => r.headline)
  return [`plugin with its defaults: instructions per request ≤ 1/${TARGET} of bare Fastify's (median ratio ${row.ratio}, rounds ${row.ratioMin} – ${row.ratioMax}${cost.quick ? '; quick run, not a result' : ''})`,
    row.ratio >= TARGET]
}

/** Puts the table between BENCHMARKS.md's per-request instruction markers, leaving the rest alone. */
function writeInstructionSection (cost, file = BENCHMARKS, when = new Date().toISOString()) {
  const text = fs.readFileSync(file, 'utf8')
  const from = text.indexOf(START)
  const to = text.indexOf(END)
  if (from === -1 || to === -1) throw new Error(`${file} has no per-request instruction markers (${START} ... ${END})`)
  const [what, met] = instructionTarget(cost)
  const section = `${START}\n${instructionTable(cost)}\n\n${met ? '✓' : '✗ missed:'} ${what}. Measured ${when}, Node ${process.version}.\n${END}`
  fs.writeFileSync(file, text.slice(0, from) + section + text.slice(to + END.length))
}

module.exports = { instructionCost, instructionTable, instructionTarget, writeInstructionSection, valgrindAvailable }

function argument (name) {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : process.argv[i + 1]
}

async function main () {
  const beforeRoot = argument('--before')
  const before = beforeRoot === undefined ? undefined : { root: path.resolve(beforeRoot), label: argument('--before-label') ?? path.basename(beforeRoot) }
  const rounds = argument('--rounds')
  const started = Date.now()
  const cost = await instructionCost({
    quick: process.argv.includes('--quick'),
    before,
    config: rounds === undefined ? {} : { rounds: Number(rounds) },
    only: argument('--only')?.split(','),
    log: (line) => process.stderr.write(line + '\n')
  })
  if (cost === undefined) {
    console.log('valgrind is not installed: no instruction counts (bench/cost.js measures CPU time without it)')
    return
  }
  console.log(instructionTable(cost))
  if (cost.rows.some((r) => r.headline)) {
    const [what, met] = instructionTarget(cost)
    console.log(`\n${met ? '✓' : '✗ missed:'} ${what}`)
  }
  console.log(`per-round ratios: ${cost.rows.filter((r) => !r.timersOnly).map((r) => `${r.key} ${r.ratios.join(' ')}`).join('; ')}`)
  console.log(`Node ${process.version}, ${Math.round((Date.now() - started) / 1000)} s`)
  if (process.argv.includes('--write')) writeInstructionSection(cost)
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}

'use strict'
// Writes BENCHMARKS.md from a full run's JSON: the table, the targets, the machine, how to rerun.
const fs = require('node:fs')
const path = require('node:path')

function benchmarksMarkdown (report, table) {
  const m = report.machine
  const c = report.config
  return `# Benchmarks

The same small Fastify service (\`bench/app.js\`) under each way of reloading it, in one run on one
machine: ${c.reloads} reloads every ${c.intervalMs / 1000} s, under keep-alive load (${c.connections.keepAlive} clients) and
connection-per-request load (${c.connections.perRequest} clients). Every request's outcome is recorded by our own client
(\`tools/load-recorder.js\`; autocannon's counters undercount resets here, so autocannon only measures
steady throughput). Compare ratios, not absolute times: the machine is shared and small.

Machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGb} GB, ${m.platform}, Node ${m.node}. Run: ${report.when}, ${report.durationS} s.

${table}

Targets (DESIGN.md §5):
${report.targets.map((t) => `- ${t.met ? '✓' : '✗ missed:'} ${t.what}`).join('\n')}

![requests/s, failures and p99 over time, reloads marked](bench/results/latest.svg)

## Reading it

- **failed** counts refused connections, resets and timeouts seen by the client; **non-2xx** the
  answers that were not 2xx. PM2 cluster mode loses requests at every reload (resets on keep-alive
  connections, refused connections and 503s), two instances more than one; a plain restart refuses
  everything while the process is down.
- **connections opened / clients**: a keep-alive client that never has to reconnect opens one
  connection in the whole run. Only \`connectionHandoff\` (on by default) does that; the ordinary
  drain (\`connectionHandoff: false\`) makes each client reconnect once per reload
  (clients × (reloads + 1)), as PM2 does.
- **defaults**: the plugin as a user gets it: \`connectionHandoff\` on, \`probation\` 2000 ms (each old
  generation lives at least 2 s after a reload, which shows in the app processes' RSS).
- **reload median**: signal (or command) → the new generation answering. The supervisor is measured
  both ways: SIGHUP (like the standalone SIGUSR2) and the \`fastify-hot-reload reload\` command, whose
  time includes starting the command itself (a Node process) and waiting for its answer. **Overhead over boot**,
  for this project: what each reload added to its successor's own boot, both measured under the same
  load (the result's \`durationMs - bootMs\`: signal → committed, minus the successor's spawn → \`listen()\`),
  median; for the others, the reload median minus the app's boot measured on an idle machine, which is
  mostly CPU contention (the successor boots while the old generation carries the load on the same cores).
- **p99 ratio**: p99 latency inside the reload windows (signal until serving + 500 ms) over steady p99.
- **daemon RSS**: the supervisor against the PM2 daemon (God process); **app processes**: all
  generations together (old and new overlap during a reload).
- **long-lived connections**: ${c.webSockets} WebSocket clients (\`ws\`, against @fastify/websocket) stay
  connected over the reloads and reconnect as soon as they are closed (after 50 ms when an attempt
  fails). **closes by code**: 1001 is Going Away (the plugin's drain, spread over \`closeSpread\`),
  1005 a close frame without a code (the app's own \`app.close()\` under PM2 or a plain restart),
  1006 a connection that ended with no close frame at all. **peak reconnects per 100 ms**: the most
  connection attempts that fell in one 100 ms: all clients at once is a reconnect storm; a plain
  restart counts its refused retries too. **old process gone**: the plugin's old generation lives
  \`closeSpread\` (half of the bench's 10 s \`drainTimeout\`) longer, by design.
- **steady throughput**: autocannon, 50 connections, ${c.throughputSeconds} s after a 1 s warm-up, ${c.throughputRounds}
  interleaved rounds, each starting at the next contender; the ratio is each round's own (this
  contender against bare Fastify in the same round), the median of the rounds, with its spread. The
  load generator shares the 2 cores with the server, and the machine's speed drifts between runs by
  ±20% and more; treat ratios within the spread as equal. The plugin's per-request cost is much smaller
  than that noise, so requests/s cannot show it either way.
- **per-request CPU cost**: CPU time of the server process per request answered, measured on all
  variants at once (see under its table). Requests/s cannot show a cost of 1%; this can, within the
  spread its table shows (~4% between two identical processes). To within 1%: the instructions per
  request, counted under valgrind (section "Per-request cost in instructions" below, \`npm run bench:instructions\`).

## Rerun

\`\`\`sh
npm ci
npm run bench          # about 18 minutes; rewrites bench/results/latest.{json,svg} and this file
npm run bench:quick    # 3 reloads, every contender once, about 3 minutes
npm run bench:smoke    # one reload per scenario, short windows: a test of the bench's code, no result (run by .ci/run)
\`\`\`

\`npm run bench:cost\` reruns only the per-request CPU table (about 3 minutes).
\`npm run bench:reload-tail -- --mode supervisor --node 24 --node 22\` compares the reload's tail on
the supported Nodes in one run (about 4 minutes per mode; \`--workers 2\`, \`--pause-ms 10\` for clients
that leave the machine room, \`--cpu-trace\` for where the CPU goes around each commit, \`--before <built checkout>\`
for another build beside this one; \`--variant 'name:VAR=value'\` for this build with extra environment,
on the bench's Node and on each \`--node\`,
e.g. \`BENCH_STALL_LOG=<dir>\` for each process's event-loop stalls, collections and drain events, or
\`BENCH_NODE_FLAGS=--log-deopt --logfile=<dir>/v8-%p.log\` for V8's own log of every generation;
\`--client-nice -10\`, as root, for the load generator at a higher CPU priority than the service).
\`node bench/shared-cores.js\` checks whether the machine's CPUs slow each other (about 2 minutes). PM2 (7.0.4, a devDependency) runs with a private \`PM2_HOME\` in a temporary directory, and its daemon
is killed at the end. Only 127.0.0.1 is used.
`
}

// Sections other measurements wrote (bench/accept-balance.js, ...) start at this line and are kept.
const KEPT = '<!-- Written by other measurements (see each section); npm run bench keeps everything below. -->'

function writeBenchmarksMarkdown (report, table, file = path.join(__dirname, '..', 'BENCHMARKS.md')) {
  let kept = ''
  try {
    const existing = fs.readFileSync(file, 'utf8')
    const at = existing.indexOf(KEPT)
    if (at !== -1) kept = '\n' + existing.slice(at)
  } catch {}
  fs.writeFileSync(file, benchmarksMarkdown(report, table) + kept)
}

module.exports = { writeBenchmarksMarkdown }

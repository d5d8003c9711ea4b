'use strict'
// Are this machine's CPUs independent? A reload boots the successor beside the serving worker, and
// lowering the successor's priority only decides who runs first on one CPU. If work on one CPU
// slows another (hyperthreads of one physical core, or a host that caps the machine's CPU time),
// the booting successor slows the serving worker even from the other CPU, whatever its priority.
//
// One process runs a fixed loop pinned to CPU 0 (taskset) and counts how much of it it gets done
// in a window; a second, the bystander, runs the same loop beside it: on CPU 1, on CPU 1 at
// niceness 19, or on CPU 0 itself at niceness 19 (what niceness does where it applies). Two loops:
// arithmetic in registers, and reads over a 64 MB array (caches and memory bandwidth). Every
// variant runs once per round, the rounds interleave, and each is reported as the share of the
// loop's work it got done against running alone in the same round (median, lowest – highest).
//
//   node bench/shared-cores.js [--rounds R] [--window-ms W]
const { spawn, execFileSync } = require('node:child_process')

const argument = (name, fallback) => {
  const i = process.argv.indexOf(name)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}
const ROUNDS = argument('--rounds', 5)
const WINDOW_MS = argument('--window-ms', 2000)

// The child: run one loop kind for ms, then print how many blocks of it were done.
const LOOP = `
const [kind, ms] = [process.argv[1], Number(process.argv[2])]
const memory = kind === 'memory' ? new Float64Array(8 * 1024 * 1024).fill(1) : null
let blocks = 0, x = 1
const end = Date.now() + ms
while (Date.now() < end) {
  if (memory) { for (let i = 0; i < memory.length; i += 16) x += memory[i] }
  else { for (let i = 0; i < 1e5; i++) x = (x * 1103515245 + 12345) | 0 }
  blocks++
}
// x is printed so that V8 cannot drop the loop's work.
console.log(blocks, x)
`

function run (cpu, nice, kind, ms) {
  const args = ['-n', String(nice), 'taskset', '-c', String(cpu), process.execPath, '-e', LOOP, kind, String(ms)]
  const child = spawn('nice', args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk) => { out += chunk })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => code === 0 ? resolve(Number(out.trim().split(' ')[0])) : reject(new Error(`the loop on CPU ${cpu} exited with ${code}`)))
  })
}

const VARIANTS = [
  { name: 'alone' },
  { name: 'bystander on CPU 1', bystander: { cpu: 1, nice: 0 } },
  { name: 'bystander on CPU 1 at niceness 19', bystander: { cpu: 1, nice: 19 } },
  { name: 'bystander on CPU 0 itself at niceness 19', bystander: { cpu: 0, nice: 19 } }
]

async function measure (variant, kind) {
  // The bystander starts first and outlasts the window, so that the measured loop has it beside it throughout.
  const bystander = variant.bystander && run(variant.bystander.cpu, variant.bystander.nice, kind, WINDOW_MS + 600)
  if (bystander) await new Promise((resolve) => setTimeout(resolve, 300))
  const blocks = await run(0, 0, kind, WINDOW_MS)
  await bystander
  return blocks
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const fixed = (n) => n.toFixed(2)

async function main () {
  if (process.platform !== 'linux') throw new Error('bench/shared-cores.js needs Linux (taskset, nice)')
  try { execFileSync('taskset', ['-c', '1', 'true']) } catch { throw new Error('bench/shared-cores.js needs taskset (util-linux) and a CPU 1') }
  const rows = []
  for (const kind of ['arithmetic', 'memory']) {
    const shares = VARIANTS.map(() => [])
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate the order by round, so that no variant always runs first.
      const order = VARIANTS.map((_, i) => i)
      if (r % 2 === 1) order.reverse()
      const blocks = []
      for (const i of order) blocks[i] = await measure(VARIANTS[i], kind)
      for (const [i, each] of blocks.entries()) shares[i].push(each / blocks[0])
      process.stderr.write(`shared-cores: ${kind}, round ${r + 1}/${ROUNDS}\n`)
    }
    for (const [i, variant] of VARIANTS.entries()) {
      if (i === 0) continue
      rows.push(`| ${kind} | ${variant.name} | ${fixed(median(shares[i]))} | ${fixed(Math.min(...shares[i]))} – ${fixed(Math.max(...shares[i]))} |`)
    }
  }
  console.log(`| loop on CPU 0 (${ROUNDS} interleaved rounds, ${WINDOW_MS} ms windows) | beside it | work done against alone, median | lowest – highest round |`)
  console.log('|---|---|---|---|')
  for (const row of rows) console.log(row)
}

main().catch((err) => { console.error(err.message); process.exitCode = 1 })

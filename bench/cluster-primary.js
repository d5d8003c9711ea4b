'use strict'
// Node's cluster module with N workers running bench/app.js, reloaded the way its documentation
// suggests for a zero-downtime restart: one worker at a time, fork its replacement, wait until the
// replacement listens, then disconnect the old one (its servers close, in-flight requests finish).
// SIGHUP (or the message 'reload') starts a rolling restart; 'reloaded' goes back to the parent.
const cluster = require('node:cluster')
const path = require('node:path')

const WORKERS = Number(process.env.BENCH_CLUSTER_WORKERS || 2)
cluster.setupPrimary({ exec: path.join(__dirname, 'app.js') })

function fork () {
  return new Promise((resolve, reject) => {
    const worker = cluster.fork()
    worker.once('listening', () => resolve(worker))
    worker.once('exit', (code) => reject(new Error(`worker exited with ${code} before listening`)))
  })
}

async function rollingRestart () {
  for (const old of Object.values(cluster.workers)) {
    await fork()
    const gone = new Promise((resolve) => old.once('exit', resolve))
    old.disconnect()
    await gone
  }
}

let reloading = Promise.resolve()
function reload () {
  reloading = reloading.then(rollingRestart).then(() => process.send?.('reloaded'), (err) => process.send?.(`failed: ${err.message}`))
}

process.on('SIGHUP', reload)
process.on('message', (message) => { if (message === 'reload') reload() })
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const worker of Object.values(cluster.workers)) worker.disconnect()
    cluster.once('exit', () => { if (Object.keys(cluster.workers).length === 0) process.exit(0) })
    setTimeout(() => process.exit(0), 10000).unref()
  })
}
Promise.all(Array.from({ length: WORKERS }, fork)).then(() => process.send?.('ready'))

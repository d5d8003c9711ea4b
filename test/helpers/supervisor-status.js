'use strict'
// The supervisor's status as tests read it: the `status --json` command, polled until the serving
// generation has the workers a test waits for.
const { cli, waitFor } = require('./processes')

async function status (control) {
  const answer = await cli(['status', '--control', control, '--json'])
  return JSON.parse(answer.stdout)
}

/** The same, or undefined while the supervisor has no control socket yet (socket activation starts it late). */
async function statusOnceUp (control) {
  const answer = await cli(['status', '--control', control, '--json'])
  return answer.code === 0 ? JSON.parse(answer.stdout) : undefined
}

// Between two status commands (each a Node process): polled back to back they keep a core busy.
const STATUS_POLL_MS = 200

/**
 * The serving generation's workers, once it has `count` serving: the workers say so in the log
 * first (read in-process), then the status command confirms it.
 */
async function servingWorkers (service, control, generation, count) {
  await service.waitForLines((l) => l.hotReloadEvent === 'serving' && l.generation === generation, count, 30000, `${count} workers of generation ${generation} to log serving`)
  return waitFor(async () => {
    const now = await statusOnceUp(control)
    if (now === undefined) return undefined
    const serving = now.workers.filter((w) => w.generation === generation && w.state === 'serving')
    return now.generation === generation && serving.length === count ? serving : undefined
  }, 30000, `generation ${generation} to serve with ${count} workers`, STATUS_POLL_MS)
}


module.exports = { status, statusOnceUp, servingWorkers, STATUS_POLL_MS }

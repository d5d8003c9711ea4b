'use strict'
// A process's CPU priority as Linux sees it: the niceness of each of its threads, and of its
// scheduler autogroup (null where the kernel has none).
const fs = require('node:fs')

function threadNiceness (pid, tid) {
  try {
    // Field 19 of stat is the niceness; the command name (field 2) may hold spaces: count from its last ')'.
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
  } catch {
    return undefined // a thread that has just ended
  }
}

/** `pid` ('self' for this process): its threads' distinct niceness values, sorted, and its autogroup's. */
function priorityOf (pid) {
  const threads = fs.readdirSync(`/proc/${pid}/task`).map((tid) => threadNiceness(pid, tid)).filter((nice) => nice !== undefined)
  let autogroup = null
  try {
    const match = /nice (-?\d+)/.exec(fs.readFileSync(`/proc/${pid}/autogroup`, 'utf8'))
    if (match !== null) autogroup = Number(match[1])
  } catch {}
  return { threads: [...new Set(threads)].sort((a, b) => a - b), autogroup }
}

module.exports = { priorityOf }

'use strict'
// A process's CPU priority as Linux sees it: the niceness of each of its threads, and of its
// scheduler autogroup (null where the kernel has none, or for a process in the root autogroup,
// whose session was never given one: every process that PID 1 started without a new session).
const { execFileSync } = require('node:child_process')
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

/** The niceness in /proc/<pid>/autogroup; null where it is empty (the root autogroup). */
function autogroupNiceness (text) {
  const match = /nice (-?\d+)/.exec(text)
  return match === null ? null : Number(match[1])
}

/** `pid` ('self' for this process): its threads' distinct niceness values, sorted, and its autogroup's. */
function priorityOf (pid) {
  const threads = fs.readdirSync(`/proc/${pid}/task`).map((tid) => threadNiceness(pid, tid)).filter((nice) => nice !== undefined)
  let autogroup = null
  try {
    autogroup = autogroupNiceness(fs.readFileSync(`/proc/${pid}/autogroup`, 'utf8'))
  } catch {}
  return { threads: [...new Set(threads)].sort((a, b) => a - b), autogroup }
}

/**
 * The priority a child of ours starts with in a session of its own, as the supervisor's workers
 * do: our threads' niceness, and the autogroup the kernel gives a new session (nice 0), or null
 * where it has none. Not ours: a test run in the root autogroup has none of its own.
 */
function newSessionPriority () {
  let autogroup = null
  try {
    autogroup = autogroupNiceness(execFileSync('setsid', ['cat', '/proc/self/autogroup'], { encoding: 'utf8' }))
  } catch {}
  return { threads: priorityOf('self').threads, autogroup }
}

module.exports = { priorityOf, newSessionPriority }

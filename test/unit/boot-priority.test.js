'use strict'
// lib/boot-priority.ts: whether a priority can be raised again (Linux's rules, read from
// /proc/<pid>/status and /proc/<pid>/limits), whether a child has an autogroup of its own, and a
// real child lowered and given its priority back at the deadline.
const { execFileSync, spawn } = require('node:child_process')
const { test } = require('tap')
const { mayRaiseTo, ownAutogroupNice, lowerWhileBooting, schedStat } = require('../../dist/lib/boot-priority')
const { priorityOf, newSessionPriority } = require('../helpers/priority')

const same = (a, b) => a.threads.join() === b.threads.join() && a.autogroup === b.autogroup

const status = (capEff) => `Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\nCapBnd:\t${capEff}\n`
const limits = (nice) => 'Limit                     Soft Limit           Hard Limit           Units     \n' +
  'Max open files            1048576              1048576              files     \n' +
  `Max nice priority         ${nice}                    ${nice}                    \n`

test('mayRaiseTo: CAP_SYS_NICE (bit 23) allows any niceness', async (t) => {
  t.ok(mayRaiseTo(-20, { status: status('000001ffffffffff'), limits: limits(0) }), 'root with every capability')
  t.ok(mayRaiseTo(0, { status: status('0000000000800000'), limits: limits(0) }), 'CAP_SYS_NICE alone')
  t.notOk(mayRaiseTo(0, { status: status('000001fffe7fffff'), limits: limits(0) }), 'every capability but CAP_SYS_NICE (Docker drops it)')
  t.notOk(mayRaiseTo(0, { status: status('0000000000000000'), limits: limits(0) }), 'an ordinary user')
})

test('mayRaiseTo: without CAP_SYS_NICE, RLIMIT_NICE allows down to 20 - limit', async (t) => {
  const none = status('0000000000000000')
  t.ok(mayRaiseTo(0, { status: none, limits: limits(20) }), 'limit 20: down to 0')
  t.notOk(mayRaiseTo(-1, { status: none, limits: limits(20) }), 'limit 20: not below 0')
  t.ok(mayRaiseTo(5, { status: none, limits: limits(15) }), 'limit 15: down to 5')
  t.notOk(mayRaiseTo(4, { status: none, limits: limits(15) }))
  t.ok(mayRaiseTo(-20, { status: none, limits: limits('unlimited') }), 'unlimited')
  t.notOk(mayRaiseTo(0, { status: none, limits: 'Limit Soft Hard\n' }), 'no such line: no')
  t.notOk(mayRaiseTo(0, { status: undefined, limits: limits(40) }), 'no /proc: no')
})

test('ownAutogroupNice: the niceness of an autogroup that is not ours', async (t) => {
  t.equal(ownAutogroupNice('/autogroup-12 nice 0\n', '/autogroup-7 nice 0\n'), 0)
  t.equal(ownAutogroupNice('/autogroup-12 nice -5\n', '/autogroup-7 nice 0\n'), -5)
  t.equal(ownAutogroupNice('/autogroup-7 nice 0\n', '/autogroup-7 nice 0\n'), undefined, 'ours (a standalone successor shares our session)')
  t.equal(ownAutogroupNice(undefined, '/autogroup-7 nice 0\n'), undefined, 'a kernel without autogroups')
  // PID 1's children that never started a session (a CI's commands, say) are in the root autogroup, whose file is empty.
  t.equal(ownAutogroupNice('/autogroup-12 nice 0\n', ''), 0, 'we are in the root autogroup; a worker in a new session is not')
  t.equal(ownAutogroupNice('', ''), undefined, 'both in the root autogroup')
  t.equal(ownAutogroupNice('garbage', '/autogroup-7 nice 0\n'), undefined)
})

test('lowerWhileBooting: nothing to do without a pid or with 0 steps', async (t) => {
  t.doesNotThrow(() => lowerWhileBooting(undefined, 10, 1000).restore())
  t.doesNotThrow(() => lowerWhileBooting(process.pid, 0, 1000).restore())
})

test('lowerWhileBooting: a child in a session of its own is lowered at once and gets our priority back at maxMs', async (t) => {
  const ours = priorityOf('self')
  // A session of its own, as the supervisor's workers have: an autogroup of its own where the kernel has them.
  const start = newSessionPriority()
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { detached: true, stdio: 'ignore' })
  t.teardown(() => child.kill('SIGKILL'))
  await new Promise((resolve) => child.once('spawn', resolve))
  const threads = mayRaiseTo(ours.threads[0])
  lowerWhileBooting(child.pid, 10, 600)
  // After its second pass (50 ms), which catches threads Node started while the first one ran.
  await new Promise((resolve) => setTimeout(resolve, 150))
  const lowered = priorityOf(child.pid)
  t.equal(lowered.autogroup, start.autogroup === null ? null : start.autogroup + 10, 'its autogroup, 10 steps down (where there are autogroups)')
  t.same(lowered.threads, threads ? [ours.threads[0] + 10] : ours.threads, 'its threads, 10 steps down where they can be raised again')
  await new Promise((resolve) => setTimeout(resolve, 900))
  t.same(priorityOf(child.pid), start, 'back where it started after maxMs')
})

test('schedStat: its main thread\'s time on a CPU and waiting for one', async (t) => {
  t.same(schedStat('1025666995 1528570974 2262\n'), { runNs: 1025666995, waitNs: 1528570974 })
  t.equal(schedStat(undefined), undefined, 'no such file')
  t.equal(schedStat('garbage'), undefined)
})

const TASKSET = (() => {
  try {
    return execFileSync('sh', ['-c', 'command -v taskset'], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
})()

/** A busy process on CPU 0 only, in a session of its own. */
function busyOnCpu0 (t) {
  const child = spawn(TASKSET, ['-c', '0', process.execPath, '-e', 'for (;;) {}'], { detached: true, stdio: 'ignore' })
  t.teardown(() => child.kill('SIGKILL'))
  return new Promise((resolve) => child.once('spawn', () => resolve(child)))
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test(`lowerWhileBooting: a lowered child that waits for a CPU most of the time gets ours back long before maxMs${TASKSET ? '' : ' (no taskset here to share one CPU: not run)'}`, async (t) => {
  if (TASKSET === undefined) return t.pass('no taskset')
  const start = newSessionPriority()
  // Beside a busy process of ours on the same CPU, 10 steps down, it gets ~10% of that CPU.
  await busyOnCpu0(t)
  const starved = await busyOnCpu0(t)
  lowerWhileBooting(starved.pid, 10, 5000)
  if (same(priorityOf(starved.pid), start)) return t.pass('nothing here can be lowered and set back (no autogroup, no CAP_SYS_NICE)')
  const deadline = Date.now() + 2000
  while (Date.now() < deadline && !same(priorityOf(starved.pid), start)) await sleep(50)
  t.same(priorityOf(starved.pid), start, 'back where it started within 2 s (maxMs 5 s): it was starved')
})

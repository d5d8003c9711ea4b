'use strict'
// lib/boot.ts readBoot(): what the environment says about how this process was started. Pure.
const { test } = require('tap')
const { readBoot } = require('../../dist/lib/boot')
const { chooseMode } = require('../../dist/lib/mode')

test('no handoff, no activation: a first generation, standalone', async (t) => {
  const info = readBoot({ PATH: '/bin' })
  t.same(info, { handoff: null, activated: null, error: undefined, clusterWorker: false })
  t.equal(chooseMode(info.handoff).name, 'standalone')
  t.equal(chooseMode(info.handoff).reloadUnsupported, undefined, 'it reloads itself')
})

test('a worker of node:cluster (PM2 cluster mode): no reloads of its own, nothing told to systemd', async (t) => {
  const info = readBoot({ PATH: '/bin' }, process.pid, true)
  t.equal(info.clusterWorker, true)
  const mode = chooseMode(info.handoff, info.clusterWorker)
  t.equal(mode.name, 'cluster-worker')
  t.match(mode.reloadUnsupported, /cluster worker/, 'says why a reload cannot run')
  t.equal(mode.refusal(undefined), undefined, 'it serves')
  t.equal(mode.delegatedReload(undefined), undefined)
  // A generation handed off (a successor, a supervised worker) is never taken for one.
  const supervised = readBoot({ FASTIFY_HOT_RELOAD_PARENT: '12', FASTIFY_HOT_RELOAD_GENERATION: '3', FASTIFY_HOT_RELOAD_SUPERVISED: '1', LISTEN_FDS: '0' }, process.pid, true)
  t.equal(chooseMode(supervised.handoff, true).name, 'supervised')
})

test('a supervised handoff with no sockets picks the supervised mode', async (t) => {
  const info = readBoot({ FASTIFY_HOT_RELOAD_PARENT: '12', FASTIFY_HOT_RELOAD_GENERATION: '3', FASTIFY_HOT_RELOAD_SUPERVISED: '1', LISTEN_FDS: '0' })
  t.match(info.handoff, { generation: 3, parentPid: 12, supervised: true, sockets: [] })
  t.equal(chooseMode(info.handoff).name, 'supervised')
  const gone = chooseMode({ ...info.handoff, parentPid: 2 ** 22 + 1 }).refusal(undefined, 4242)
  t.equal(gone.code, 'HOT_RELOAD_SUPERVISOR_GONE', 'a worker without its supervisor refuses to serve')
  const ownParent = chooseMode({ ...info.handoff, parentPid: process.pid }).refusal(undefined, process.pid)
  t.equal(ownParent.code, 'HOT_RELOAD_SUPERVISOR_GONE', 'its supervisor as its parent, but no channel: gone (a channel closed)')
  const between = chooseMode({ ...info.handoff, parentPid: process.pid }).refusal(undefined, 4242)
  t.equal(between.code, 'HOT_RELOAD_WORKER_NOT_CONNECTED', 'a live supervisor that is not its parent: a runner came between')
  t.match(between.message, /-- node --import tsx app\.ts/, 'and it says what to give the supervisor instead')
})

test('a malformed handoff is an error to report, not a throw at load', async (t) => {
  const info = readBoot({ FASTIFY_HOT_RELOAD_PARENT: 'x' })
  t.equal(info.error.code, 'HOT_RELOAD_INVALID_HANDOFF')
  t.match(info.error.message, /FASTIFY_HOT_RELOAD_PARENT/)
  const activation = readBoot({ LISTEN_PID: '77', LISTEN_FDS: 'two' }, 77)
  t.match(activation.error.message, /LISTEN_FDS/)
  t.same(readBoot({ LISTEN_PID: '78', LISTEN_FDS: '1' }, 77).activated, null, 'activation meant for another pid is not ours')
})

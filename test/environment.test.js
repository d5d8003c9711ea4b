'use strict'
// Configuration that changes with the release: a successor starts from the environment the service
// was first started with (plus `successor.env`), never from what the app, `--env-file` or dotenv
// wrote into process.env since, so a changed .env file is read afresh. Standalone and supervised agree.
const fs = require('node:fs')
const path = require('node:path')
const tap = require('tap')
const { test } = tap
const { BIN, FIXTURE_APP, Service, servingTarget, startSupervised, tempDir, writeRelease } = require('./helpers/processes')
const { request } = require('./faults/common')

// Two tests at a time: each waits mostly on a boot and a reload, so their waits overlap. Each has its
// own service, directory and port.
tap.jobs = 2

const PLUGIN = { idleGrace: 200, drainTimeout: 5000, readyTimeout: 20000 }

function writeDotEnv (dir, values) {
  fs.writeFileSync(path.join(dir, '.env'), Object.entries(values).map(([key, value]) => `FHR_TEST_${key}=${value}\n`).join(''))
}

async function seen (target, name) {
  const { body } = await request(target, { path: `/env?name=${name}` })
  return body.value
}

/** Release 1 with GREETING=one, then a reload into release 2 with GREETING=two and a new variable. */
async function changedConfiguration (t, service, dir, reload, { fromAnEnvFile }) {
  const target = await servingTarget(service)
  t.equal(await seen(target, 'GREETING'), 'one', `release 1 read its ${fromAnEnvFile}`)
  t.equal(await seen(target, 'SET_AT_RUNTIME'), 'by release 1', 'release 1 changed its own environment at run time')
  writeDotEnv(dir, { GREETING: 'two', ADDED: 'new' })
  writeRelease(dir, { version: 2, plugin: PLUGIN, dotenv: fromAnEnvFile === 'dotenv' })
  await reload()
  t.equal(await seen(target, 'GREETING'), 'two', 'a changed variable has its new value after the reload')
  t.equal(await seen(target, 'ADDED'), 'new', 'a new variable appears')
  t.equal(await seen(target, 'SET_AT_RUNTIME'), null, 'what the old generation wrote into process.env is not inherited')
  t.equal(await seen(target, 'FROM_THE_LAUNCHER'), 'kept', 'the environment the service was started with is kept')
}

test('standalone, node --env-file=.env: a reload reads the changed .env', async (t) => {
  const dir = tempDir(t)
  writeDotEnv(dir, { GREETING: 'one' })
  writeRelease(dir, { version: 1, plugin: PLUGIN, setAtRuntime: true })
  const service = Service.start(t, { cwd: dir, args: ['--env-file=.env', FIXTURE_APP], env: { FHR_TEST_FROM_THE_LAUNCHER: 'kept' } })
  await changedConfiguration(t, service, dir, async () => {
    process.kill(service.pid, 'SIGUSR2')
    await service.generationServing(2)
  }, { fromAnEnvFile: '--env-file' })
})

test('NODE_OPTIONS is as the user set it in every generation and in its children (the crash-report preload takes itself out): 3 chained reloads standalone, 2 supervised', async (t) => {
  const userOptions = '--max-old-space-size=300'
  const seenOptions = async (target) => (await request(target, { path: '/node-options' })).body
  const dir = tempDir(t)
  writeRelease(dir, { version: 1, plugin: PLUGIN })
  const service = Service.start(t, { cwd: dir, env: { NODE_OPTIONS: userOptions } })
  const target = await servingTarget(service)
  let pid = service.pid
  for (let version = 2; version <= 4; version++) {
    writeRelease(dir, { version, plugin: PLUGIN })
    process.kill(pid, 'SIGUSR2')
    pid = await service.generationServing(version)
    t.same(await seenOptions(target), { version, own: userOptions, child: userOptions }, `standalone generation ${version}`)
  }
  const supervised = startSupervised(t, { env: { NODE_OPTIONS: userOptions } })
  writeRelease(supervised.dir, { version: 1, plugin: PLUGIN })
  const supervisedTarget = await servingTarget(supervised.service)
  for (let version = 2; version <= 3; version++) {
    writeRelease(supervised.dir, { version, plugin: PLUGIN })
    process.kill(supervised.service.pid, 'SIGHUP')
    await supervised.service.generationServing(version)
    t.same(await seenOptions(supervisedTarget), { version, own: userOptions, child: userOptions }, `supervised generation ${version}`)
  }
})

test('standalone, dotenv in the app: a reload reads the changed .env', async (t) => {
  const dir = tempDir(t)
  writeDotEnv(dir, { GREETING: 'one' })
  writeRelease(dir, { version: 1, plugin: PLUGIN, setAtRuntime: true, dotenv: true })
  const service = Service.start(t, { cwd: dir, env: { FHR_TEST_FROM_THE_LAUNCHER: 'kept' } })
  await changedConfiguration(t, service, dir, async () => {
    process.kill(service.pid, 'SIGUSR2')
    await service.generationServing(2)
  }, { fromAnEnvFile: 'dotenv' })
})

test('supervised, node --env-file=.env under the supervisor: the same', async (t) => {
  const dir = tempDir(t)
  writeDotEnv(dir, { GREETING: 'one' })
  writeRelease(dir, { version: 1, plugin: PLUGIN, setAtRuntime: true })
  const control = path.join(dir, 'ctl', 'app.sock')
  const { service } = startSupervised(t, {
    dir,
    env: { FHR_TEST_FROM_THE_LAUNCHER: 'kept' },
    args: [BIN, 'start', '--control', control, '--', process.execPath, '--env-file=.env', FIXTURE_APP]
  })
  await changedConfiguration(t, service, dir, async () => {
    process.kill(service.pid, 'SIGHUP')
    await service.generationServing(2)
  }, { fromAnEnvFile: '--env-file' })
})

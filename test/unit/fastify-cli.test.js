'use strict'
// lib/fastify-cli.ts: fastify-cli's close grace (how long after SIGTERM/SIGINT it exits), read as
// fastify-cli reads it: its flag, else FASTIFY_CLOSE_GRACE_DELAY, else 500; unknown with a config file.
const path = require('node:path')
const { test } = require('tap')
const { fastifyCliCloseGraceMs } = require('../../dist/lib/fastify-cli')
const { REPO } = require('../helpers/processes')

const CLI = path.join(REPO, 'node_modules/.bin/fastify')

test('fastify-cli\'s close grace from its command line and environment', async (t) => {
  t.equal(fastifyCliCloseGraceMs([CLI, 'start', 'app.js'], {}), 500, 'its default')
  t.equal(fastifyCliCloseGraceMs([CLI, 'start', '-g', '35000', 'app.js'], {}), 35000, '-g')
  t.equal(fastifyCliCloseGraceMs([CLI, 'start', '--close-grace-delay=20000', 'app.js'], {}), 20000, '--close-grace-delay=')
  t.equal(fastifyCliCloseGraceMs([CLI, 'start', 'app.js'], { FASTIFY_CLOSE_GRACE_DELAY: '9000' }), 9000, 'FASTIFY_CLOSE_GRACE_DELAY')
  t.equal(fastifyCliCloseGraceMs([CLI, 'start', '--close-grace-delay', '100', 'app.js'], { FASTIFY_CLOSE_GRACE_DELAY: '9000' }), 100, 'the flag over the variable')
  t.equal(fastifyCliCloseGraceMs([CLI, 'start', 'app.js', '--', '-g', '1'], {}), 500, 'the app\'s own arguments after -- are not fastify-cli\'s')
  t.equal(fastifyCliCloseGraceMs([CLI, 'start', '-c', 'config.js', 'app.js'], {}), undefined, 'a config file may set it: unknown')
  t.equal(fastifyCliCloseGraceMs([CLI, 'generate', 'x'], {}), undefined, 'not `start`')
  t.equal(fastifyCliCloseGraceMs([path.join(REPO, 'test/fixtures/app.js'), 'start'], {}), undefined, 'not fastify-cli')
})

'use strict'
// lib/fastify-state.ts: what Fastify's own state says, read with a real Fastify instance.
const { test } = require('tap')
const Fastify = require('fastify')
const { bootUnderWay, fastifyListened } = require('../../dist/lib/fastify-state')

test('while a ready() loads the plugins, the boot under way is the one every ready() shares: it rejects with what a later plugin threw', async (t) => {
  const app = Fastify()
  let seen
  app.register(async (instance) => {
    const boot = bootUnderWay(instance)
    t.ok(boot !== undefined, 'a boot is under way')
    boot.then(undefined, (err) => { seen = err })
  })
  app.register(async () => { throw new Error('the database is not there') })
  await t.rejects(app.ready(), { message: 'the database is not there' })
  t.equal(seen?.message, 'the database is not there', 'the boot under way rejected with the same error')
})

test('from an encapsulated context, the boot under way is the root\'s: it rejects with what a plugin registered after it threw', async (t) => {
  const app = Fastify()
  let seen
  app.register(async (child) => {
    child.register(async (grandchild) => { bootUnderWay(grandchild)?.then(undefined, (err) => { seen = err }) })
  })
  app.register(async () => { throw new Error('a later plugin failed') })
  await t.rejects(app.ready())
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(seen?.message, 'a later plugin failed')
})

test('under an `await app.register()`, no boot is under way: none is started early, and the app registers on afterwards', async (t) => {
  const app = Fastify()
  let underWay = 'not asked'
  await app.register(async (instance) => { underWay = bootUnderWay(instance) })
  t.equal(underWay, undefined, 'no boot under way')
  // A boot started by the lookup would make this throw (the root plugin has already booted).
  app.get('/later', async () => 'registered after')
  t.equal((await app.inject('/later')).body, 'registered after')
})

test('whether Fastify\'s own listen() ran', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  t.equal(fastifyListened(app), false, 'not before listen()')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal(fastifyListened(app), true, 'after listen()')
})

test('no Fastify state where it is looked for: undefined answers', async (t) => {
  const plain = { ready: () => { throw new Error('must not be called') } }
  t.equal(fastifyListened(plain), undefined)
  t.equal(bootUnderWay(plain), undefined)
})

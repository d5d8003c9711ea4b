'use strict'
const { test } = require('tap')
const { formatAddress, addressToFdName, fdNameToAddress, parseListenArgs, literalHosts, requestMatches } = require('../../dist/lib/listener-address')

test('addresses round-trip through LISTEN_FDNAMES names', async (t) => {
  for (const address of [
    { kind: 'tcp', address: '127.0.0.1', port: 3000 },
    { kind: 'tcp', address: '::1', port: 8080 },
    { kind: 'tcp', address: '0.0.0.0', port: 1 },
    { kind: 'unix', path: '/run/app:v2/app.sock' }
  ]) {
    const name = addressToFdName(address)
    t.notOk(name.includes(':'), `${formatAddress(address)} gives a name without ':'`)
    t.same(fdNameToAddress(name), address)
  }
  t.equal(formatAddress({ kind: 'tcp', address: '::1', port: 3 }), '[::1]:3')
})

test('names that are not addresses', async (t) => {
  for (const name of ['http', '127.0.0.1%3A70000', '%3A%3A1%3A80', '%E0%A4%A', 'unix%3A', '300.1.1.1%3A80', '[127.0.0.1]%3A80']) {
    t.equal(fdNameToAddress(name), null, name)
  }
})

test('listen() argument forms', async (t) => {
  t.same(parseListenArgs([{ port: 3000, host: '127.0.0.1' }]), { kind: 'tcp', host: '127.0.0.1', port: 3000 })
  t.same(parseListenArgs([{ port: '3000' }]), { kind: 'tcp', host: undefined, port: 3000 })
  t.same(parseListenArgs([{ path: '/tmp/a.sock' }]), { kind: 'unix', path: '/tmp/a.sock' })
  t.same(parseListenArgs([3000, '::1', () => {}]), { kind: 'tcp', host: '::1', port: 3000 })
  t.same(parseListenArgs(['/tmp/a.sock']), { kind: 'unix', path: '/tmp/a.sock' })
  t.same(parseListenArgs([]), { kind: 'tcp', host: undefined, port: 0 })
  t.equal(parseListenArgs([{ fd: 3 }]), null)
  t.equal(parseListenArgs([{ handle: {} }]), null)
  t.equal(parseListenArgs([{ port: -1 }]), null)
})

test('hosts and matching', async (t) => {
  t.same(literalHosts(undefined), ['::', '0.0.0.0'])
  t.equal(literalHosts('localhost'), null)
  t.same(literalHosts('::1'), ['::1'])
  const socket = { kind: 'tcp', address: '127.0.0.1', port: 3000 }
  t.ok(requestMatches({ kind: 'tcp', host: '127.0.0.1', port: 0 }, ['127.0.0.1'], socket), 'port 0 means any port')
  t.ok(requestMatches({ kind: 'tcp', host: '127.0.0.1', port: 3000 }, ['127.0.0.1'], socket))
  t.notOk(requestMatches({ kind: 'tcp', host: '127.0.0.1', port: 3001 }, ['127.0.0.1'], socket))
  t.notOk(requestMatches({ kind: 'tcp', host: '::1', port: 3000 }, ['::1'], socket))
  t.notOk(requestMatches({ kind: 'unix', path: '/a' }, [], socket))
  t.ok(requestMatches({ kind: 'unix', path: '/a' }, [], { kind: 'unix', path: '/a' }))
})

'use strict'
// lib/listener-address.ts: addresses as LISTEN_FDNAMES names, listen() argument forms, and whether a
// listen() request asks for an inherited socket.
const { test } = require('tap')
const {
  formatAddress, addressToFdName, fdNameToAddress, fromServerAddress, parseListenArgs, literalHosts, requestMatches
} = require('../../dist/lib/listener-address')

test('formatAddress', async (t) => {
  t.equal(formatAddress({ kind: 'tcp', address: '127.0.0.1', port: 3000 }), '127.0.0.1:3000')
  t.equal(formatAddress({ kind: 'tcp', address: '0.0.0.0', port: 0 }), '0.0.0.0:0')
  t.equal(formatAddress({ kind: 'tcp', address: '::1', port: 3000 }), '[::1]:3000')
  t.equal(formatAddress({ kind: 'tcp', address: '::', port: 80 }), '[::]:80')
  t.equal(formatAddress({ kind: 'unix', path: '/run/app.sock' }), 'unix:/run/app.sock')
})

test('addresses round-trip through LISTEN_FDNAMES names', async (t) => {
  for (const address of [
    { kind: 'tcp', address: '127.0.0.1', port: 3000 },
    { kind: 'tcp', address: '0.0.0.0', port: 1 },
    { kind: 'tcp', address: '10.1.2.3', port: 65535 },
    { kind: 'tcp', address: '::1', port: 3000 },
    { kind: 'tcp', address: '::', port: 8080 },
    { kind: 'tcp', address: 'fe80::1%eth0', port: 80 },
    { kind: 'tcp', address: '::ffff:127.0.0.1', port: 80 },
    { kind: 'unix', path: '/tmp/app.sock' },
    { kind: 'unix', path: '/run/app:v2/a:b.sock' },
    { kind: 'unix', path: '/srv/my app/100%/sock' },
    { kind: 'unix', path: 'relative/dir/app.sock' }
  ]) {
    const name = addressToFdName(address)
    t.notOk(name.includes(':'), `${formatAddress(address)} gives a name without ':' (${name})`)
    t.same(fdNameToAddress(name), address, `${formatAddress(address)} round-trips`)
  }
  t.equal(addressToFdName({ kind: 'tcp', address: '::1', port: 3000 }), '%5B%3A%3A1%5D%3A3000', '[::1]:3000')
  t.equal(addressToFdName({ kind: 'tcp', address: '127.0.0.1', port: 3000 }), '127.0.0.1%3A3000')
  t.equal(addressToFdName({ kind: 'unix', path: '/a/b' }), 'unix%3A%2Fa%2Fb')
})

test('names are decoded whether or not they were encoded', async (t) => {
  t.same(fdNameToAddress('127.0.0.1:3000'), { kind: 'tcp', address: '127.0.0.1', port: 3000 })
  t.same(fdNameToAddress('[::1]:3000'), { kind: 'tcp', address: '::1', port: 3000 })
  t.same(fdNameToAddress('unix:/tmp/x.sock'), { kind: 'unix', path: '/tmp/x.sock' })
})

test('names that are not addresses', async (t) => {
  for (const name of [
    '', 'http', 'garbage', 'systemd-socket',
    '127.0.0.1', // no port
    '127.0.0.1%3A', // empty port
    '127.0.0.1%3A65536', '127.0.0.1%3A70000', '127.0.0.1%3A999999', // port > 65535
    '127.0.0.1%3A-1', '127.0.0.1%3Ahttp',
    '%3A%3A1%3A3000', '::1:3000', // IPv6 without brackets
    '%5B127.0.0.1%5D%3A80', // IPv4 in brackets
    '%5B%3A%3A1%5D', // IPv6 without a port
    '300.1.1.1%3A80', 'localhost%3A3000', 'example.com%3A80', // not an IP literal
    '%E0%A4%A', '%', '%zz', // not URI-decodable
    'unix%3A', 'unix:' // no path
  ]) {
    t.equal(fdNameToAddress(name), null, JSON.stringify(name))
  }
})

test('fromServerAddress', async (t) => {
  t.same(fromServerAddress({ address: '127.0.0.1', family: 'IPv4', port: 3000 }), { kind: 'tcp', address: '127.0.0.1', port: 3000 })
  t.same(fromServerAddress('/tmp/x.sock'), { kind: 'unix', path: '/tmp/x.sock' })
  t.equal(fromServerAddress(null), null)
  t.equal(fromServerAddress(undefined), null)
})

test('listen() argument forms', async (t) => {
  const cb = () => {}
  t.same(parseListenArgs([{ port: 3000, host: '127.0.0.1' }]), { kind: 'tcp', host: '127.0.0.1', port: 3000 })
  t.same(parseListenArgs([{ port: 3000, host: '127.0.0.1' }, cb]), { kind: 'tcp', host: '127.0.0.1', port: 3000 })
  t.same(parseListenArgs([{ port: 3000 }]), { kind: 'tcp', host: undefined, port: 3000 })
  t.same(parseListenArgs([{ port: 3000, host: '' }]), { kind: 'tcp', host: undefined, port: 3000 }, 'an empty host is no host')
  t.same(parseListenArgs([{ port: '3000' }]), { kind: 'tcp', host: undefined, port: 3000 }, 'a port as a string')
  t.same(parseListenArgs([{ host: '::1' }]), { kind: 'tcp', host: '::1', port: 0 }, 'no port: any port')
  t.same(parseListenArgs([{ path: '/tmp/x.sock' }]), { kind: 'unix', path: '/tmp/x.sock' })
  t.same(parseListenArgs([{ path: '/tmp/x.sock', port: 3000 }]), { kind: 'unix', path: '/tmp/x.sock' }, 'path wins over port')
  t.same(parseListenArgs([3000, '127.0.0.1']), { kind: 'tcp', host: '127.0.0.1', port: 3000 })
  t.same(parseListenArgs([3000, '::1', 511, cb]), { kind: 'tcp', host: '::1', port: 3000 })
  t.same(parseListenArgs([3000, cb]), { kind: 'tcp', host: undefined, port: 3000 })
  t.same(parseListenArgs(['3000']), { kind: 'tcp', host: undefined, port: 3000 }, 'a numeric string is a port')
  t.same(parseListenArgs(['/tmp/x.sock']), { kind: 'unix', path: '/tmp/x.sock' })
  t.same(parseListenArgs(['/tmp/x.sock', cb]), { kind: 'unix', path: '/tmp/x.sock' })
  t.same(parseListenArgs([]), { kind: 'tcp', host: undefined, port: 0 })
  t.same(parseListenArgs([0]), { kind: 'tcp', host: undefined, port: 0 })
  t.same(parseListenArgs([undefined, '127.0.0.1']), { kind: 'tcp', host: '127.0.0.1', port: 0 })
})

test('listen() forms that name no address', async (t) => {
  t.equal(parseListenArgs([{ fd: 3 }]), null, 'an fd')
  t.equal(parseListenArgs([{ fd: 3, port: 3000 }]), null, 'an fd, whatever else')
  t.equal(parseListenArgs([{ handle: {} }]), null, 'a handle')
  t.equal(parseListenArgs([{ _handle: {} }]), null, 'a server or socket')
  t.equal(parseListenArgs([{ port: -1 }]), null, 'a negative port')
  t.equal(parseListenArgs([{ port: 65536 }]), null, 'a port > 65535')
  t.equal(parseListenArgs([{ port: 1.5 }]), null, 'a fractional port')
  t.equal(parseListenArgs([{ port: 'http' }]), null, 'a port name')
  t.equal(parseListenArgs([70000]), null)
})

test('parseListenArgs: listen() and listen(callback) mean any port on every address', async (t) => {
  t.same(parseListenArgs([]), { kind: 'tcp', host: undefined, port: 0 })
  t.same(parseListenArgs([() => {}]), { kind: 'tcp', host: undefined, port: 0 })
})

test('literalHosts', async (t) => {
  t.same(literalHosts(undefined), ['::', '0.0.0.0'], 'no host: the unspecified address, IPv6 first')
  t.equal(literalHosts('localhost'), null, 'a host name needs a lookup')
  t.equal(literalHosts('example.com'), null)
  t.same(literalHosts('::1'), ['::1'])
  t.same(literalHosts('127.0.0.1'), ['127.0.0.1'])
  t.same(literalHosts('0.0.0.0'), ['0.0.0.0'])
})

test('requestMatches: tcp', async (t) => {
  const socket = { kind: 'tcp', address: '127.0.0.1', port: 3000 }
  t.ok(requestMatches({ kind: 'tcp', host: '127.0.0.1', port: 0 }, ['127.0.0.1'], socket), 'port 0 means any port')
  t.ok(requestMatches({ kind: 'tcp', host: '127.0.0.1', port: 3000 }, ['127.0.0.1'], socket), 'the exact port')
  t.notOk(requestMatches({ kind: 'tcp', host: '127.0.0.1', port: 3001 }, ['127.0.0.1'], socket), 'another port')
  t.notOk(requestMatches({ kind: 'tcp', host: '::1', port: 3000 }, ['::1'], socket), 'another address')
  t.notOk(requestMatches({ kind: 'tcp', host: '127.0.0.1', port: 3000 }, [], socket), 'no host to match')
  const any = { kind: 'tcp', address: '::', port: 8080 }
  t.ok(requestMatches({ kind: 'tcp', host: undefined, port: 8080 }, literalHosts(undefined), any), 'no host matches [::]')
  t.ok(requestMatches({ kind: 'tcp', host: undefined, port: 0 }, literalHosts(undefined), { kind: 'tcp', address: '0.0.0.0', port: 1 }), 'no host matches 0.0.0.0')
  t.notOk(requestMatches({ kind: 'tcp', host: undefined, port: 8080 }, literalHosts(undefined), { kind: 'tcp', address: '127.0.0.1', port: 8080 }), 'no host does not match loopback')
})

test('requestMatches: unix vs tcp', async (t) => {
  const tcp = { kind: 'tcp', address: '127.0.0.1', port: 3000 }
  const unix = { kind: 'unix', path: '/tmp/a.sock' }
  t.ok(requestMatches({ kind: 'unix', path: '/tmp/a.sock' }, [], unix), 'the same path')
  t.notOk(requestMatches({ kind: 'unix', path: '/tmp/b.sock' }, [], unix), 'another path')
  t.notOk(requestMatches({ kind: 'unix', path: '/tmp/a.sock' }, [], tcp), 'a unix request, a tcp socket')
  t.notOk(requestMatches({ kind: 'tcp', host: '127.0.0.1', port: 0 }, ['127.0.0.1'], unix), 'a tcp request, a unix socket')
  t.notOk(requestMatches({ kind: 'tcp', host: undefined, port: 0 }, ['::', '0.0.0.0'], unix), 'any port does not mean a unix socket')
})

test('IPv6 hosts match whatever way they are written', async (t) => {
  const { parseListenArgs, literalHosts, requestMatches } = require('../../dist/lib/listener-address')
  for (const host of ['0:0:0:0:0:0:0:1', '::0001', '::1']) {
    const request = parseListenArgs([{ host, port: 3000 }])
    t.ok(requestMatches(request, literalHosts(request.host), { kind: 'tcp', address: '::1', port: 3000 }), host)
  }
  const any = parseListenArgs([{ host: '::0', port: 3000 }])
  t.ok(requestMatches(any, literalHosts(any.host), { kind: 'tcp', address: '::', port: 3000 }), '::0 is ::')
  const upper = parseListenArgs([{ host: 'FE80::1', port: 1 }])
  t.ok(requestMatches(upper, literalHosts(upper.host), { kind: 'tcp', address: 'fe80::1', port: 1 }), 'case')
})

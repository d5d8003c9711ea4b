'use strict'
// lib/socket-adoption.ts temporaryUnixPath: the name a unix socket is bound under before it is
// renamed into place must fit a unix socket address (107 bytes) and sit in the same directory.
const path = require('node:path')
const { test } = require('tap')
const { temporaryUnixPath } = require('../../dist/lib/socket-adoption')

test('a temporary unix socket name: beside the path, within 107 bytes, or none', async (t) => {
  t.equal(temporaryUnixPath('/run/app/app.sock', 4321, 1), '/run/app/app.sock.4321.tmp', 'a short path: <path>.<pid>.tmp')
  const dir = '/srv/' + 'd'.repeat(40)
  const long = path.join(dir, 'n'.repeat(104 - dir.length - 1))
  t.equal(Buffer.byteLength(long), 104)
  const temporary = temporaryUnixPath(long, 4321, 1)
  t.equal(path.dirname(temporary), dir, 'a long path: a name in the same directory')
  t.ok(Buffer.byteLength(temporary) <= 107, 'that fits')
  t.not(temporary, long)
  const other = path.join(dir, 'm'.repeat(104 - dir.length - 1))
  t.not(temporaryUnixPath(other, 4321, 2), temporary, 'another long path of the same process and directory, bound at the same time: another name')
  const deep = '/' + 'd'.repeat(101) + '/s'
  t.equal(temporaryUnixPath(deep, 4321, 1), undefined, 'a directory too long for any: none')
})

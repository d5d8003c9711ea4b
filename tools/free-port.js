'use strict'
// A TCP port free on 127.0.0.1 at this moment (the kernel picks it), for tests and benchmarks that
// must tell a process which port to bind.
const net = require('node:net')

function freePort (host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen(0, host, () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    }).on('error', reject)
  })
}

module.exports = { freePort }

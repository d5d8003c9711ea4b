'use strict'
// One request on a connection of its own, its JSON answer read whole: the fixture app's routes answer JSON.
const http = require('node:http')

/** `{ status, body }` of `method route` at target ({ host, port }); rejects with the request's error. */
function requestJson (target, route = '/', { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    http.request({ ...target, path: route, method, headers, agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode, body: JSON.parse(body) }))
    }).on('error', reject).end()
  })
}

module.exports = { requestJson }

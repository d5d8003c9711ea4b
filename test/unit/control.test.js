'use strict'
// lib/supervisor/control.ts: the control socket answers every request that is not a known command
// with HOT_RELOAD_BAD_REQUEST and goes on serving (a JSON `null` once threw in the supervisor and
// ended it), and runs one command per connection. A real Unix socket, in-process.
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { listenControl, requestControl } = require('../../dist/lib/supervisor/control')

/** Sends raw bytes and resolves with the answer's text once the supervisor ends the connection. */
function rawRequest (socketPath, ...chunks) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath)
    let answer = ''
    socket.setEncoding('utf8')
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error('no answer within 5 s')) })
    socket.on('data', (chunk) => { answer += chunk })
    socket.on('error', reject)
    socket.on('end', () => { socket.end(); resolve(answer) })
    socket.once('connect', async () => {
      for (const chunk of chunks) {
        socket.write(chunk)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })
  })
}

/** A control socket in a temporary directory, answering every command ok; `handled` lists what reached it. */
async function controlServer (t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhr-control-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const socketPath = path.join(dir, 'ctl.sock')
  const handled = []
  const server = await listenControl(socketPath, async (request) => {
    handled.push(request.command)
    return { ok: true, command: request.command }
  })
  t.teardown(() => server.close())
  return { dir, socketPath, handled }
}

test('malformed requests are answered HOT_RELOAD_BAD_REQUEST; the socket serves on, one command per connection', async (t) => {
  const { socketPath, handled } = await controlServer(t)
  const uncaught = []
  const onUncaught = (err) => uncaught.push(err)
  process.on('uncaughtException', onUncaught)
  t.teardown(() => process.off('uncaughtException', onUncaught))

  for (const body of ['null', '[]', '[1]', '1', '"reload"', 'true', '{}', '{"command":"nope"}', '{"command":null}', 'garbage']) {
    const answer = JSON.parse(await rawRequest(socketPath, body + '\n'))
    t.equal(answer.ok, false, `${body}: not ok`)
    t.equal(answer.error?.code, 'HOT_RELOAD_BAD_REQUEST', `${body}: HOT_RELOAD_BAD_REQUEST`)
  }
  t.same(handled, [], 'none reached the handler')
  t.same(uncaught, [], 'and none threw')

  // A request in pieces, and more bytes after its line: one command runs, once.
  const answer = JSON.parse(await rawRequest(socketPath, '{"comm', 'and":"reload"}\n{"command":"rel', 'oad"}\n'))
  t.same(answer, { ok: true, command: 'reload' })
  t.same(handled, ['reload'], 'one reload for one connection')
  t.same(await requestControl(socketPath, { command: 'status' }, 5000), { ok: true, command: 'status' }, 'and the socket still answers a good request')
  // A good first line followed by more than a request's worth of bytes in the same write: answered.
  const flood = JSON.parse(await rawRequest(socketPath, '{"command":"status"}\n'.repeat(300)))
  t.same(flood, { ok: true, command: 'status' }, 'a first line with 6 KB behind it in one write is answered')
})

test('a --timeout that ends before the request was even written: rejected as nothing asked, not the "no answer yet" of a request under way', async (t) => {
  const { dir, socketPath, handled } = await controlServer(t)
  const noAnswer = () => ({ ok: false, error: { code: 'HOT_RELOAD_NO_ANSWER' } })
  const asking = requestControl(socketPath, { command: 'reload' }, 1, noAnswer)
  // The loop is held past the timeout: its timer then runs before the connection is seen (timers come first in a turn).
  const until = Date.now() + 20
  while (Date.now() < until);
  await t.rejects(asking, { message: /nothing was asked/ })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(handled, [], 'nothing reached the supervisor')
  // Once written, the same timeout gives the caller's "no answer yet".
  const slow = await listenControl(path.join(dir, 'slow.sock'), () => new Promise((resolve) => setTimeout(() => resolve({ ok: true }), 500)))
  t.teardown(() => slow.close())
  t.same(await requestControl(path.join(dir, 'slow.sock'), { command: 'reload' }, 100, noAnswer), noAnswer())
})

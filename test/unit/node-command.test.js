'use strict'
// lib/node-command.ts: which argument of a Node command line is the app's script.
const { test } = require('tap')
const { scriptIndex, packageRunner } = require('../../dist/lib/node-command')

test('the script is the first argument that is neither an option nor an option\'s value', async (t) => {
  const cases = [
    [['app.js'], 0],
    [['--import', 'tsx', 'app.ts'], 2],
    [['--import=tsx', 'app.ts'], 1],
    [['-r', './preload.js', 'server.js', '--port', '3000'], 2],
    [['--require', 'dotenv/config', '--enable-source-maps', 'dist/main.js'], 3],
    [['--max-old-space-size=512', '--title', 'api', 'app.js'], 3],
    [['-C', 'development', '--env-file', '.env', 'app.mjs'], 4],
    [['--inspect', 'app.js'], 1],
    [['--inspect-port', '9231', 'app.js'], 2],
    [['--', 'app.js'], 1],
    [['-e', 'require("./app")'], -1],
    [['--eval=1'], -1],
    [['-p', '1 + 1'], -1],
    [['-'], -1],
    [['--enable-source-maps'], -1],
    [[], -1]
  ]
  for (const [args, expected] of cases) t.equal(scriptIndex(args), expected, `node ${args.join(' ')}`)
})

test('a package runner is found by its program, or by its script when node runs it', async (t) => {
  const cases = [
    ['npm', ['start'], 'npm'],
    ['/usr/local/bin/npx', ['tsx', 'app.ts'], 'npx'],
    ['pnpm', ['run', 'serve'], 'pnpm'],
    ['yarnpkg', ['start'], 'yarn'],
    ['/usr/bin/node', ['/usr/lib/node_modules/npm/bin/npm-cli.js', 'start'], 'npm'],
    ['node', ['--enable-source-maps', 'npx-cli.js', 'app'], 'npx'],
    ['node', ['app.js'], undefined],
    ['node', ['-r', 'npm-cli.js', 'app.js'], undefined],
    ['node', ['-e', '1'], undefined],
    ['/opt/bin/npm-like', ['start'], undefined],
    ['tsx', ['app.ts'], undefined]
  ]
  for (const [execPath, args, expected] of cases) t.equal(packageRunner(execPath, args), expected, `${execPath} ${args.join(' ')}`)
})

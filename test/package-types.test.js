'use strict'
// The package as users get it: packed by npm, checked by @arethetypeswrong/cli, installed in a new app,
// whose TypeScript is compiled under each module setting (node10, nodenext ESM and CommonJS, bundler)
// and then run, so that the declarations and what require()/import really give agree.
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const { REPO, tempDir } = require('./helpers/processes')

const CONSUMER = path.join(REPO, 'test/fixtures/consumer')
const TSC = path.join(REPO, 'node_modules/typescript/bin/tsc')
const ATTW = path.join(REPO, 'node_modules/@arethetypeswrong/cli/dist/index.js')
const RESOLUTIONS = ['node10', 'node16-cjs', 'node16-esm', 'bundler']

// Under a minute on a quiet machine (tsc is most of it); each step has its own deadline.

/** Runs a command; resolves with its exit code, output and duration, whatever the code (deadline included). */
function run (file, args, options) {
  const started = Date.now()
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 120000, maxBuffer: 64 << 20, encoding: 'utf8', ...options }, (error, stdout, stderr) => {
      const took = `${((Date.now() - started) / 1000).toFixed(1)} s`
      resolve({ code: error ? (error.code ?? error.signal) : 0, stdout, stderr, took })
    })
  })
}

const versionOf = (name) => JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', name, 'package.json'), 'utf8')).version
const parseJson = (text) => { try { return JSON.parse(text) } catch { return undefined } }
const mtime = (file) => fs.statSync(path.join(REPO, file)).mtimeMs

test(`the packed package is typed right for every module resolution (Node ${process.version})`, async (t) => {
  const built = ['dist/index.js', 'dist/index.d.ts'].every((file) => fs.existsSync(path.join(REPO, file)))
  t.ok(built && mtime('dist/index.d.ts') >= Math.max(mtime('index.ts'), mtime('lib/types.ts')),
    'dist/ is built from the current sources (npm test builds first; else run npm run build)')

  const dir = tempDir(t, 'fhr-package-')
  const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: REPO })
  t.equal(pack.code, 0, `npm pack (${pack.took}) ${pack.stderr}`)
  if (pack.code !== 0) return
  const tarball = path.join(dir, JSON.parse(pack.stdout)[0].filename)
  const files = JSON.parse(pack.stdout)[0].files.map((file) => file.path)
  t.ok(files.includes('dist/index.d.ts') && files.includes('dist/lib/types.d.ts'), 'the declarations are packed')
  // The README sends users to these: the deploy script, the systemd units, the Dockerfile, the design notes.
  for (const file of ['examples/deploy/deploy.sh', 'examples/systemd/app.service', 'examples/docker/Dockerfile', 'docs/architecture.md', 'BENCHMARKS.md']) t.ok(files.includes(file), `${file} is packed`)

  // A new app beside the tarball: the package from it, fastify and Node's types as the repo pins them.
  const app = path.join(dir, 'app')
  fs.cpSync(CONSUMER, app, { recursive: true })
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({
    name: 'consumer',
    private: true,
    dependencies: { 'fastify-hot-reload': `file:${tarball}`, fastify: versionOf('fastify'), '@types/node': versionOf('@types/node') }
  }))
  const [attw, install] = await Promise.all([
    run(process.execPath, [ATTW, tarball, '--format', 'json']),
    run('npm', ['install', '--prefix', app, '--prefer-offline', '--no-package-lock', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app })
  ])

  t.equal(attw.code, 0, `attw reports no problem (${attw.took}) ${attw.stderr}`)
  const analysis = parseJson(attw.stdout)?.analysis
  t.same(analysis?.problems, [], 'attw: no problems')
  const entry = analysis?.entrypoints?.['.'] ?? { resolutions: {} }
  for (const kind of RESOLUTIONS) {
    const resolution = entry.resolutions[kind]
    t.equal(resolution?.resolution?.fileName, '/node_modules/fastify-hot-reload/dist/index.d.ts', `${kind}: resolves to the declarations`)
    t.equal(resolution?.implementationResolution?.fileName, '/node_modules/fastify-hot-reload/dist/index.js', `${kind}: and to the CommonJS entry`)
    t.same(resolution?.visibleProblems, [], `${kind}: no problem`)
  }

  t.equal(install.code, 0, `npm install of the tarball (${install.took}) ${install.stderr}`)
  if (install.code !== 0) return
  const tsc = await run(process.execPath, [TSC, '-b', 'tsconfig.nodenext.json', 'tsconfig.node10.json', 'tsconfig.bundler.json'], { cwd: app })
  t.equal(tsc.code, 0, `the apps type-check under nodenext (.mts, .cts), node10 and bundler (${tsc.took})\n${tsc.stdout}${tsc.stderr}`)
  if (tsc.code !== 0) return

  // Run what tsc made: the imports the types allowed give the plugin at run time too.
  const apps = { esm: 'out/nodenext/esm.mjs', cjs: 'out/nodenext/cjs.cjs', node10: 'out/node10/node10.js' }
  const runs = await Promise.all(Object.values(apps).map((file) => run(process.execPath, [file], { cwd: app, timeout: 60000 })))
  Object.keys(apps).forEach((consumer, i) => {
    const { code, stdout, stderr, took } = runs[i]
    t.equal(code, 0, `${consumer} app runs (${took}) ${stderr}`)
    const last = stdout.trim().split('\n').pop()
    t.same(last ? JSON.parse(last) : null, { consumer, plugin: 'function', same: true, generation: 1 },
      `${consumer}: every import form is the plugin, and app.hotReload is there once ready`)
  })
})

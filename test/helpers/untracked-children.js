'use strict'
// tap tracks every process a test starts, for coverage: it preloads @tapjs/processinfo into each
// one through NODE_OPTIONS, and a spawn hook (process-on-spawn) puts it back into any environment a
// spawn is given. With coverage off (npm test) that serves nothing, and it costs every service,
// successor and worker the tests start 0.07 s (Node 26) to 0.2 s (Node 20) of CPU at start, and a
// file written at its exit: hundreds of times a run, beside the load the tests measure under.
// `npm run coverage` keeps it: there the processes the tests start are what coverage measures.
const SPAWN_HOOKS = Symbol.for('process-on-spawn@*:singletonId')
const PROCESSINFO_IMPORT = /"?--(?:import|loader|experimental-loader)=\S*@tapjs[/\\]processinfo\S*?"?(?=\s|$)/g

/** Leaves tap's process tracking out of the processes started from here on; true if it did. */
function untrackChildren (env = process.env, hooks = globalThis[SPAWN_HOOKS]) {
  if (env.TAP_DISABLE_COVERAGE !== '1') return false
  // What process-on-spawn's removeAllListeners() does, on the one state every copy of it shares.
  if (hooks !== undefined && Array.isArray(hooks.listeners)) hooks.listeners = []
  if (env.NODE_OPTIONS !== undefined) env.NODE_OPTIONS = env.NODE_OPTIONS.replace(PROCESSINFO_IMPORT, '').replace(/\s+/g, ' ').trim()
  return true
}

module.exports = { untrackChildren }

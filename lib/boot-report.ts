// Preloaded into a successor or a supervised worker by its parent (NODE_OPTIONS --require, see
// withCrashReport): from before the app's first line, what ends the process is told to the parent
// (crash-report.ts), a syntax error or a missing module included, which end it before the plugin is
// ever loaded. It takes itself out of NODE_OPTIONS at once.
import { isMainThread } from 'node:worker_threads'
import { restoreNodeOptions, watchFromPreload } from './crash-report'
import { processPort } from './process-port'

if (isMainThread) {
  restoreNodeOptions(process.env)
  if (processPort.hasChannel) watchFromPreload(processPort)
}

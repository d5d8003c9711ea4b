'use strict'
// Loads started by a test are stopped at its teardown, so a test that fails before it stops
// them does not keep its file running until tap's timeout.
const { Load, RawConnection } = require('../../tools/load-recorder')

function startLoad (t, target, options) {
  const load = new Load(target, options).start()
  t.teardown(() => load.stop())
  return load
}

module.exports = { startLoad, Load, RawConnection }

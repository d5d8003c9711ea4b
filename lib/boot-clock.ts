// When the app's own boot ended in this process: the moment its (last) listen() reached the net
// layer, i.e. when a plain start of the app would bind and serve. A successor reports it with its
// 'ready', and the parent, which knows when it spawned the successor, splits the reload's time
// into the app's boot (spawn → listen(), as long as a plain start takes under the same load) and
// what the reload added (asking for it, spawning, the readiness check, adoption, IPC, the commit).
//
// The monotonic clock (process.hrtime) is one clock for every process of the machine, unlike the
// wall clock, which may step between two readings.

let listenedAt: number | undefined

/** Now, on the machine-wide monotonic clock, in ms. */
export function monotonicMs (): number {
  return Number(process.hrtime.bigint()) / 1e6
}

/** A listen() of the app reached the net layer: its boot is over (the last such call counts). */
export function markAppBooted (): void {
  listenedAt = monotonicMs()
}

/** When (monotonicMs) the app called listen(), or undefined when no listen() was seen. */
export function appListenedAt (): number | undefined {
  return listenedAt
}

// When the app's own boot ended in this process: the moment its (last) listen() reached the net
// layer, i.e. when a plain app would bind and serve. A successor reports it with its 'ready', so
// that a reload's time can be split into the app's boot and what the reload added (spawn, our
// readiness check, adoption, IPC, commit), both measured under the same load.

let bootedAt: number | undefined

/** A listen() of the app reached the net layer: its boot is over (the last such call counts). */
export function markAppBooted (): void {
  bootedAt = performance.now()
}

/**
 * Ms from this process's start (`performance.timeOrigin`, taken as Node starts) to the app's
 * listen(), or undefined when no listen() was seen.
 */
export function appBootMs (): number | undefined {
  return bootedAt === undefined ? undefined : Math.round(bootedAt)
}

// The seam between the generation's logic and the process it runs in: signals, the IPC channel to
// whoever started us, and the way out. Tests drive the state machine and the links with a fake.

export type PortListener = (...args: any[]) => void

export interface ProcessPort {
  readonly pid: number
  /** True while the IPC channel to our parent (previous generation or supervisor) is open. */
  readonly connected: boolean
  /** Whether this process was started with an IPC channel at all. */
  readonly hasChannel: boolean
  on (event: string, listener: PortListener): void
  once (event: string, listener: PortListener): void
  off (event: string, listener: PortListener): void
  /** The listeners of an event (a signal) right now. */
  listeners (event: string): PortListener[]
  /** Sends over the IPC channel; `handle` travels with it. The callback gets the send error, if any. */
  send (message: object, handle: object | undefined, callback: (err: Error | null) => void): void
  disconnect (): void
  exit (code: number): void
}

/** The real process. */
export const processPort: ProcessPort = {
  get pid () { return process.pid },
  get connected () { return process.connected === true },
  get hasChannel () { return typeof process.send === 'function' },
  on (event, listener) { process.on(event, listener) },
  once (event, listener) { process.once(event, listener) },
  off (event, listener) { process.removeListener(event, listener) },
  listeners (event) { return process.listeners(event as NodeJS.Signals) as PortListener[] },
  send (message, handle, callback) {
    if (process.send === undefined || !process.connected) {
      callback(new Error('no IPC channel to the parent'))
      return
    }
    process.send(message, handle as never, {}, (err: Error | null) => callback(err ?? null))
  },
  disconnect () { if (process.connected) process.disconnect() },
  exit (code) { process.exit(code) }
}

// sd_notify for systemd units (Type=notify, notify-reload). Node has no unix datagram sockets, and a
// native addon would have to be rebuilt for every Node version; systemd-notify ships with systemd
// itself, so it is there wherever NOTIFY_SOCKET is. Messages are sent one after another, in order.
// A unit that uses it needs NotifyAccess=all (the message comes from the systemd-notify process).
import { execFile } from 'node:child_process'

export type Notifier = (state: Record<string, string>) => Promise<void>

export interface NotifyLogger {
  warn (obj: object | string, msg?: string): void
}

export function createNotifier (env: Record<string, string | undefined>, log: NotifyLogger, command = 'systemd-notify'): Notifier | undefined {
  const socket = env.NOTIFY_SOCKET
  if (socket === undefined || socket === '') return undefined
  let queue: Promise<void> = Promise.resolve()
  return (state) => {
    const assignments = Object.entries(state).map(([key, value]) => `${key}=${value.replace(/\n/g, ' ')}`)
    queue = queue.then(() => new Promise<void>((resolve) => {
      execFile(command, assignments, { env: { ...process.env, NOTIFY_SOCKET: socket }, timeout: 5_000 }, (err) => {
        if (err !== null) log.warn({ hotReload: 'sd-notify-failed', err: err.message }, `sd_notify: ${command} ${assignments.join(' ')} failed`)
        resolve()
      })
    }))
    return queue
  }
}

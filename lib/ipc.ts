// Messages between generations over the IPC channel, namespaced so that an app's own IPC traffic
// and ours never mix.
const KEY = 'fastify-hot-reload'

export type ChildMessage =
  | { type: 'ready', pid: number, generation: number }
  | { type: 'failed', message: string }

export type ParentMessage = { type: 'commit' } | { type: 'abort' }

export function unwrap (value: unknown): { type: string, [key: string]: unknown } | undefined {
  if (typeof value !== 'object' || value === null || !(KEY in value)) return undefined
  const inner = (value as Record<string, unknown>)[KEY]
  if (typeof inner !== 'object' || inner === null || typeof (inner as { type?: unknown }).type !== 'string') return undefined
  return inner as { type: string }
}

export function wrap (message: ChildMessage | ParentMessage): object {
  return { [KEY]: message }
}

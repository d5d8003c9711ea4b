// Fields of our log lines that the logger may say on every line already.
import type { FastifyBaseLogger } from 'fastify'

/**
 * `{ generation }` for one of our log lines, or nothing when the logger says that generation on
 * every line already (a supervised worker's bindings, plugin.ts): a key twice in one JSON line is
 * one too many for log stores (Elasticsearch refuses the line).
 */
export function generationField (log: FastifyBaseLogger, generation: number): { generation?: number } {
  const bound = (log as { bindings?: () => Record<string, unknown> }).bindings?.()
  return bound?.generation === generation ? {} : { generation }
}

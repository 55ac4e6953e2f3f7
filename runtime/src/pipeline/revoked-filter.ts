/**
 * What runs in place of a filter whose bundle or signer was revoked while it was serving:
 * no code of the bundle, only a stand-in that fails every request it sees with
 * `unavailable`, so the filter's own failure policy decides: fail-closed answers 503,
 * fail-open skips the filter (counted). `reload` acts as fail-closed: no fresh instance of
 * revoked code is ever built.
 */
import type { MetricsRegistry } from '../observability/metrics.ts'
import { FilterStats, type ChainEntry } from './chain.ts'
import { FilterError, FilterErrorCode, type FilterDefinition, type FilterFactory, type StreamFilter } from './filter.ts'
import { Phase } from './phases.ts'

/**
 * @param code why: `bundle_revoked` or `signer_revoked` (in the error message and logs)
 * @example
 * filters.set(def.name, { key: `revoked#${code}`, entry: revokedEntry(def, code, maxBodyBytes, metrics) })
 */
export function revokedEntry(def: FilterDefinition, code: string, maxBodyBytes: number, metrics: MetricsRegistry): ChainEntry {
  // One error and one stream object for every request: a revoked filter costs no allocation.
  const err = new FilterError(def.name, FilterErrorCode.Unavailable, `not run: ${code}`)
  const stream: StreamFilter = {
    onRequestHeaders() {
      throw err
    },
  }
  const factory: FilterFactory = {
    name: def.name,
    kind: def.kind,
    phases: Phase.RequestHeaders,
    failurePolicy: def.failurePolicy === 'fail-open' ? 'fail-open' : 'fail-closed',
    createStream: () => stream,
    close: async () => {},
  }
  return { factory, name: def.name, phases: factory.phases, failurePolicy: factory.failurePolicy, maxBodyBytes, stats: new FilterStats(metrics, def.name) }
}

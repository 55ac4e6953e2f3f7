/**
 * The upstream side of OmniRelay: clusters of endpoints behind undici pools, with load
 * balancing, active health checks, outlier ejection, circuit breakers, timeouts and retries.
 * The contract is in `types.ts`; docs/upstream.md describes the config.
 *
 * @example
 * const clusters = createClusterManager(config.clusters, { log, metrics })
 * const res = await clusters.get('api')!.request({ method: 'GET', path: '/', headers: ['host', 'api'],
 *   body: null, policy: { requestTimeoutMs: 15_000, idleTimeoutMs: 60_000 } })
 * const httpCall = createHttpCaller(clusters) // HostServices['httpCall'] for extension hosts
 */
import type { Logger } from '../observability/logger.ts'
import type { MetricsRegistry } from '../observability/metrics.ts'
import { ClusterManager as ClusterManagerImpl } from './cluster-manager.ts'
import type { ClusterConfig, ClusterManager } from './types.ts'

export * from './types.ts'
export { createHttpCaller, MAX_CALLOUT_BODY } from './http-caller.ts'

/** Builds every cluster of a config; call `update()` with the next config, `close()` on shutdown. */
export function createClusterManager(
  configs: ClusterConfig[],
  deps: { log: Logger; metrics: MetricsRegistry },
): ClusterManager {
  return new ClusterManagerImpl(configs, deps)
}

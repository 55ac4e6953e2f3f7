/** `omnirelay validate --build`: build every filter of a config the way a start would, then release them. */
import type { ProxyConfig } from '../config/types.ts'
import type { HostServices } from '../hosts/host-services.ts'
import { createSharedData, createSharedQueues } from '../hosts/shared-state/index.ts'
import { createLogger } from '../observability/logger.ts'
import { MetricsRegistry } from '../observability/metrics.ts'
import { buildFilters, NO_FILTERS } from '../pipeline/build-filters.ts'
import { pollerForConfig } from '../bundles/revocation-poller.ts'
import { createClusterManager, createHttpCaller } from '../upstream/index.ts'

/** @throws ConfigError `config_filter_build` naming each filter that failed */
export async function buildFiltersOnce(cfg: ProxyConfig): Promise<void> {
  const log = createLogger({ level: 'error' })
  const metrics = new MetricsRegistry()
  const clusters = createClusterManager([], { log, metrics })
  const services: HostServices = {
    log,
    metrics,
    httpCall: createHttpCaller(clusters),
    sharedData: createSharedData(),
    sharedQueues: createSharedQueues(),
    epoch: 0,
    allowNative: cfg.allowNative,
  }
  // The persisted revocation list only (no network): what a start would refuse.
  const revocations = pollerForConfig(cfg, log, metrics, () => {})
  await revocations?.loadPersisted()
  try {
    const built = await buildFilters(cfg, services, NO_FILTERS, revocations ? { revocations: revocations.list } : {}, { startFailure: 'reject' })
    await Promise.allSettled([...built.values()].map((b) => b.entry.factory.close()))
  } finally {
    await clusters.close()
  }
}

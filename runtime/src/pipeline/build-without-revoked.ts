/**
 * Builds a config's filters when the revocation list covers some of them: those get the
 * revoked stand-in (no code of theirs runs; their failure policy applies), the rest build as
 * usual with the list enforced. Shared by the proxy and the in-proc pipeline.
 */
import type { LoadArtifactOptions } from '../bundles/load-artifact.ts'
import type { RevokedFilters } from '../bundles/revoked-filters.ts'
import type { ProxyConfig } from '../config/types.ts'
import type { FactoryOptions, HostServices } from '../hosts/host-services.ts'
import { buildFilters, type BuiltFilter, type BuiltFilters } from './build-filters.ts'
import { revokedEntry } from './revoked-filter.ts'

/**
 * @example
 * const filters = await buildFiltersWithout(cfg, services, running.filters, new Map([['auth', 'bundle_revoked']]), { revocations: list })
 */
export async function buildFiltersWithout(
  config: ProxyConfig,
  services: HostServices,
  previous: BuiltFilters,
  revoked: RevokedFilters,
  load: Pick<LoadArtifactOptions, 'revocations'>,
  factory?: FactoryOptions,
): Promise<BuiltFilters> {
  if (revoked.size === 0) return buildFilters(config, services, previous, load, factory)
  const built = await buildFilters({ ...config, filters: config.filters.filter((f) => !revoked.has(f.name)) }, services, previous, load, factory)
  const out = new Map<string, BuiltFilter>(built)
  for (const def of config.filters) {
    const code = revoked.get(def.name)
    if (code !== undefined) out.set(def.name, { key: `revoked#${code}`, entry: revokedEntry(def, code, config.limits.maxBodyBytes, services.metrics) })
  }
  return out
}

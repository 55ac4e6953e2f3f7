/**
 * Builds the filter factories of a config: for each definition, load (and verify) the
 * artifact, pick the host for its kind, and let the host build a ready factory. Factories
 * whose definition, module, bundle and effective quotas and grant are unchanged are reused
 * from the previous epoch (warm instances, compiled code and state survive a reload). One
 * failing filter fails the whole build; nothing half-built is left behind.
 *
 * A valid module that fails while starting does not fail the build: its factory is built in a
 * failed state and answers requests by its failure policy (hosts/start-failure.ts).
 */
import { loadArtifact, type BundleArtifact, type LoadArtifactOptions } from '../bundles/load-artifact.ts'
import { canonical } from '../config/canonical.ts'
import { ConfigError, ConfigErrorCode, type ConfigIssue } from '../config/errors.ts'
import type { ProxyConfig } from '../config/types.ts'
import type { FactoryOptions, HostServices } from '../hosts/host-services.ts'
import { hostFor } from '../hosts/index.ts'
import { withEffectiveQuotas } from '../hosts/quotas.ts'
import { FilterStats, type ChainEntry } from './chain.ts'
import type { FilterDefinition, FilterFactory, LoadedArtifact } from './filter.ts'

export interface BuiltFilter {
  key: string
  entry: ChainEntry
  /** Who signed the filter's bundle (verified at load); absent for unsigned modules. Kill rules by signer match it. */
  signer?: { keyId: string; publisher: string }
}

/** The filters of one epoch, by name. */
export type BuiltFilters = ReadonlyMap<string, BuiltFilter>

export const NO_FILTERS: BuiltFilters = new Map()

/** What the proxy asks of every host: a filter that fails to start gets its policy's answer. */
export const SERVE_FAILED_STARTS: FactoryOptions = { startFailure: 'serve' }

/**
 * @param previous the running epoch's filters (for reuse), if any
 * @param load extra loader options (the node's revocation list)
 * @param factory how hosts build: by default a filter that fails to start is served by its
 *   failure policy; `validate --build` passes `{ startFailure: 'reject' }` to report it
 * @throws ConfigError `config_filter_build` naming each filter that failed
 */
export async function buildFilters(
  cfg: ProxyConfig,
  services: HostServices,
  previous: BuiltFilters = NO_FILTERS,
  load: Pick<LoadArtifactOptions, 'revocations'> = {},
  factory: FactoryOptions = SERVE_FAILED_STARTS,
): Promise<BuiltFilters> {
  const out = new Map<string, BuiltFilter>()
  const created: FilterFactory[] = []
  const issues: ConfigIssue[] = []
  const opts: LoadArtifactOptions = { baseDir: cfg.baseDir, allowUnsigned: cfg.allowUnsigned, log: services.log, metrics: services.metrics }
  if (cfg.trustPolicy !== undefined) opts.trustPolicy = cfg.trustPolicy
  if (load.revocations !== undefined) opts.revocations = load.revocations

  await Promise.all(
    cfg.filters.map(async (def, i) => {
      try {
        const artifact = await loadArtifact(def, opts)
        const key = reuseKey(def, artifact, cfg)
        const prev = previous.get(def.name)
        if (prev && prev.key === key) {
          out.set(def.name, prev)
          return
        }
        const host = await hostFor(def.kind)
        const made = await host.createFactory(def, artifact, services, factory)
        created.push(made)
        const built: BuiltFilter = { key, entry: makeEntry(withEffectiveQuotas(def, artifact), made, cfg, services) }
        const keyId = (artifact as Partial<BundleArtifact>).signerKey?.keyId
        if (artifact.bundle && keyId !== undefined) built.signer = { keyId, publisher: artifact.bundle.signer }
        out.set(def.name, built)
      } catch (e) {
        const err = e as Error & { code?: unknown }
        const code = typeof err.code === 'string' ? `${err.code}: ` : ''
        issues.push({ path: `filters[${i}]`, message: `filter "${def.name}" failed to build: ${code}${err.message ?? String(e)}` })
      }
    }),
  )
  if (issues.length) {
    await Promise.allSettled(created.map((f) => f.close()))
    throw new ConfigError(ConfigErrorCode.FilterBuild, issues)
  }
  return out
}

/** Factories of `old` that `next` no longer uses: close them once the old epoch drained. */
export function retiredFactories(old: BuiltFilters, next: BuiltFilters): FilterFactory[] {
  const keep = new Set<FilterFactory>()
  for (const b of next.values()) keep.add(b.entry.factory)
  const out: FilterFactory[] = []
  for (const b of old.values()) if (!keep.has(b.entry.factory)) out.push(b.entry.factory)
  return out
}

/**
 * What a built factory depends on: the definition, the module, and what the bundle's manifest
 * adds to them (a re-signed bundle may keep the module but change the effective quotas or
 * grant, and then must not keep the old factory).
 */
function reuseKey(def: FilterDefinition, artifact: LoadedArtifact, cfg: ProxyConfig): string {
  return canonical({
    def,
    module: artifact.digest,
    bundle: artifact.bundle?.digest,
    quotas: artifact.quotas,
    capabilities: artifact.capabilities,
    maxBodyBytes: cfg.limits.maxBodyBytes,
  })
}

function makeEntry(def: FilterDefinition, factory: FilterFactory, cfg: ProxyConfig, services: HostServices): ChainEntry {
  const quota = def.quotas.maxBodyBytes
  return {
    factory,
    name: def.name,
    phases: factory.phases,
    failurePolicy: factory.failurePolicy ?? def.failurePolicy,
    maxBodyBytes: quota === undefined ? cfg.limits.maxBodyBytes : Math.min(quota, cfg.limits.maxBodyBytes),
    stats: new FilterStats(services.metrics, def.name),
  }
}

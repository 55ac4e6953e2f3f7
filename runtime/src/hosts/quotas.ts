/**
 * The quotas a host enforces for a filter. A bundle's artifact carries the effective quotas
 * (config over the manifest's defaults, checked against its maximums: see
 * bundles/load-artifact.ts); a plain module has only what config says.
 */
import type { FilterDefinition, LoadedArtifact } from '../pipeline/filter.ts'

/**
 * `def` with the artifact's effective quotas in place of the configured ones (`def` itself
 * when there is nothing to replace), so every later `def.quotas` read is the effective one.
 *
 * @example
 * def = withEffectiveQuotas(def, artifact)
 * const fuel = def.quotas.fuel ?? DEFAULTS.fuel
 */
export function withEffectiveQuotas(def: FilterDefinition, artifact: LoadedArtifact): FilterDefinition {
  const q = artifact.quotas
  return q === undefined || q === def.quotas ? def : { ...def, quotas: q }
}

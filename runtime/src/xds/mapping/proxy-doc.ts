/**
 * MeshConfig -> a proxy config document (the file format of docs/configuration.md), to be
 * checked by the config validator like any file. Filter chains become proxy filters named
 * `<chain>.<filter>`; bundles point at local files (fetched and cached by digest).
 */
import type { RouteConfig } from '../../config/types.ts'
import { filterInstanceName, type MeshBundle, type MeshConfig } from './mesh-config.ts'
import { filterSplitsFromMesh, splitChains } from '../../rollout/filter-splits.ts'

/** Local settings of the data plane that do not come from the control plane. */
export interface LocalSettings {
  trustPolicy?: string
  admin?: { address?: string; port?: number }
  accessLog?: string
  logLevel?: 'debug' | 'info' | 'warn' | 'error'
  limits?: Record<string, number>
}

/**
 * @param bundleFile where the bundle of a BundleRef lies on disk (already fetched and checked)
 * @example
 * const doc = meshToProxyDoc(mesh, { trustPolicy: 'trust.yaml' }, (b) => cache.pathOf(b.digest))
 * validateConfig(doc, baseDir)
 */
export function meshToProxyDoc(mesh: MeshConfig, local: LocalSettings, bundleFile: (b: MeshBundle) => string): Record<string, unknown> {
  const chains = new Map(mesh.filterChains.map((c) => [c.name, c]))
  const bundles = new Map(mesh.bundles.map((b) => [b.name, b]))
  const chainFilters = (chain: string | undefined): string[] => {
    if (!chain) return []
    // An unknown chain is kept as a name the validator reports (unknown filter).
    const c = chains.get(chain)
    return c ? c.filters.map((f) => filterInstanceName(c.name, f.name)) : [chain]
  }
  const used = new Set<string>()
  for (const l of mesh.listeners) if (l.filterChain) used.add(l.filterChain)
  for (const r of mesh.routes) if (r.filterChain) used.add(r.filterChain)
  // A rollout's twin chain is used by no route: its filters are built for the split to run.
  for (const c of splitChains(mesh)) used.add(c)
  const filters: Record<string, unknown>[] = []
  for (const name of used) {
    const c = chains.get(name)
    if (!c) continue
    for (const f of c.filters) {
      const b = bundles.get(f.bundle)
      const def: Record<string, unknown> = {
        name: filterInstanceName(c.name, f.name),
        kind: b?.hostKind ?? 'wasm',
        // A missing BundleRef leaves a path that cannot load: the build names the filter.
        bundle: b ? { path: bundleFile(b), digest: b.digest } : { path: `missing-bundle-ref:${f.bundle}` },
        failurePolicy: f.failurePolicy,
        isolation: f.isolation,
        quotas: f.quotas,
        capabilities: f.capabilities,
      }
      if (f.config !== undefined) def.config = f.config
      if (f.calloutClusters?.length) def.calloutClusters = f.calloutClusters
      filters.push(def)
    }
  }
  const doc: Record<string, unknown> = {
    listeners: mesh.listeners.map((l) => ({
      name: l.name,
      address: l.address,
      port: l.port,
      mode: l.mode,
      http2: l.http2,
      filters: chainFilters(l.filterChain),
    })),
    clusters: mesh.clusters,
    routes: mesh.routes.map((r) => routeDoc(r, chainFilters(r.filterChain))),
    filters,
  }
  const splits = filterSplitsFromMesh(mesh)
  if (splits.length) doc.filterSplits = splits
  return withLocal(doc, local)
}

/**
 * `doc` with this data plane's local settings laid over it (a copy): they win over what the
 * control plane sent or a saved last-known-good config holds.
 */
export function withLocal(doc: Record<string, unknown>, local: LocalSettings): Record<string, unknown> {
  const out = { ...doc }
  if (local.trustPolicy !== undefined) out.trustPolicy = local.trustPolicy
  if (local.admin !== undefined) out.admin = local.admin
  if (local.accessLog !== undefined) out.accessLog = local.accessLog
  if (local.logLevel !== undefined) out.logLevel = local.logLevel
  if (local.limits !== undefined) out.limits = local.limits
  return out
}

/** A validated route back in file form (the validator's input shape). */
export function routeDoc(r: RouteConfig, filters: string[]): Record<string, unknown> {
  const p = r.match.path
  const match: Record<string, unknown> = {
    ...('exact' in p ? { path: p.exact } : 'prefix' in p ? { prefix: p.prefix } : { regex: p.regex }),
  }
  if (r.match.hosts.length) match.hosts = r.match.hosts
  if (r.match.methods.length) match.methods = r.match.methods
  if (r.match.headers.length) match.headers = r.match.headers
  const out: Record<string, unknown> = { name: r.name, match, policy: r.policy, filters }
  if (r.listeners.length) out.listeners = r.listeners
  if (r.cluster !== undefined) out.cluster = r.cluster
  if (r.weightedClusters !== undefined) out.weightedClusters = r.weightedClusters
  if (r.directResponse) out.directResponse = { ...r.directResponse, headers: Object.fromEntries(r.directResponse.headers) }
  if (r.redirect) out.redirect = r.redirect
  if (r.prefixRewrite !== undefined) out.prefixRewrite = r.prefixRewrite
  if (r.hostRewrite !== undefined) out.hostRewrite = r.hostRewrite
  return out
}

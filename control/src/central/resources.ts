/**
 * A group's mesh config as cached xDS resources, with capability negotiation: a data plane
 * gets only what it can run. A filter chain needs the host kinds (and ABIs) of its bundles;
 * for a client without one, its fail-open filters of that kind are dropped (the chain is
 * down-levelled) and, if a filter that must not be skipped remains, the chain is withheld,
 * and with it the listeners and route configurations that use it: serving a route without
 * its fail-closed filter would silently drop policy. Central reports what it withheld.
 */
import type { MeshConfig } from '@omnirelay/runtime/xds/mapping/mesh-config.ts'
import { meshToResources } from '@omnirelay/runtime/xds/mapping/wire.ts'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import type { Requirement } from '../xds/cache/capabilities.ts'
import { makeResourceByRules, type DownlevelRule } from '../xds/cache/downlevel.ts'
import { makeResource, type XdsResource } from '../xds/cache/resource.ts'

type Msg = Record<string, unknown>
type FilterMsg = { bundle: string; failure_policy: string }

export function meshResources(mesh: MeshConfig): XdsResource[] {
  const bundles = new Map(mesh.bundles.map((b) => [b.name, b]))
  const kindOf = (f: FilterMsg) => bundles.get(f.bundle)?.hostKind
  const kinds = [...new Set(mesh.bundles.map((b) => b.hostKind))].sort()
  // One rule per host kind: the chain needs it while it has a filter of that kind.
  const rules: DownlevelRule[] = kinds.map((kind) => ({
    name: `${kind}-filters`,
    typeUrl: TypeUrl.FilterChain,
    requires: (fc: Msg) => {
      const of = (fc.filters as FilterMsg[]).filter((f) => kindOf(f) === kind)
      if (of.length === 0) return undefined
      return { hostKinds: [kind], abis: [...new Set(of.map((f) => bundles.get(f.bundle)!.abi))].sort() }
    },
    downlevel: (fc: Msg) => {
      const filters = fc.filters as FilterMsg[]
      if (filters.some((f) => kindOf(f) === kind && f.failure_policy !== 'fail-open')) return undefined
      return { ...fc, filters: filters.filter((f) => kindOf(f) !== kind) }
    },
  }))
  // What a client must run for a chain not to be withheld: kinds used by filters that may not be skipped.
  const hard = new Map<string, Requirement>()
  for (const c of mesh.filterChains) {
    const must = c.filters.filter((f) => f.failurePolicy !== 'fail-open').map((f) => bundles.get(f.bundle)).filter((b) => b !== undefined)
    if (must.length) hard.set(c.name, { hostKinds: [...new Set(must.map((b) => b.hostKind))].sort(), abis: [...new Set(must.map((b) => b.abi))].sort() })
  }
  const union = (chains: (string | undefined)[]): Requirement | undefined => {
    const h = new Set<string>()
    const a = new Set<string>()
    for (const c of chains) {
      const r = c === undefined ? undefined : hard.get(c)
      r?.hostKinds?.forEach((x) => h.add(x))
      r?.abis?.forEach((x) => a.add(x))
    }
    return h.size ? { hostKinds: [...h].sort(), abis: [...a].sort() } : undefined
  }
  const listenerNeeds = new Map<string, Requirement | undefined>()
  for (const l of mesh.listeners) {
    const routes = mesh.routes.filter((r) => r.listeners.length === 0 || r.listeners.includes(l.name))
    listenerNeeds.set(l.name, union([l.filterChain, ...routes.map((r) => r.filterChain)]))
  }
  return meshToResources(mesh).map((r) => {
    switch (r.typeUrl) {
      case TypeUrl.BundleRef: {
        const b = bundles.get(r.name)!
        return makeResource(r.typeUrl, r.name, r.message, { requires: { hostKinds: [b.hostKind], abis: [b.abi] } })
      }
      case TypeUrl.FilterChain:
        return makeResourceByRules(r.typeUrl, r.name, r.message, rules)
      case TypeUrl.Listener:
      case TypeUrl.RouteConfiguration: {
        const needs = listenerNeeds.get(r.name)
        return makeResource(r.typeUrl, r.name, r.message, needs ? { requires: needs } : {})
      }
      default:
        return makeResource(r.typeUrl, r.name, r.message)
    }
  })
}

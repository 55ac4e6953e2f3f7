/**
 * What a resource points at, so a snapshot can be checked for consistency before
 * it is served (a listener whose route configuration is missing would leave
 * clients warming forever).
 */
import { decodeResource } from '@omnirelay/runtime/xds/proto/resource-codec.ts'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'

export interface ResourceRef {
  readonly typeUrl: string
  readonly name: string
}

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'

type Obj = Record<string, any>

/** References found in the message bytes of a known type; unknown types have none. */
export function referencesOf(typeUrl: string, name: string, value: Uint8Array): ResourceRef[] {
  switch (typeUrl) {
    case TypeUrl.Listener:
      return listenerRefs(decodeResource(typeUrl, value))
    case TypeUrl.Cluster: {
      const c = decodeResource(typeUrl, value)
      if (c.type !== 'EDS') return []
      const svc = (c.eds_cluster_config as Obj | null)?.service_name
      return [{ typeUrl: TypeUrl.ClusterLoadAssignment, name: svc || name }]
    }
    case TypeUrl.RouteConfiguration:
      return routeRefs(decodeResource(typeUrl, value))
    case TypeUrl.FilterChain: {
      const fc = decodeResource(typeUrl, value) as Obj
      return (fc.filters as Obj[]).filter((f) => f.bundle).map((f) => ({ typeUrl: TypeUrl.BundleRef, name: f.bundle as string }))
    }
    case TypeUrl.RolloutSplit: {
      const rs = decodeResource(typeUrl, value) as Obj
      const refs: ResourceRef[] = []
      for (const t of rs.targets as Obj[]) {
        if (t.cluster) refs.push({ typeUrl: TypeUrl.Cluster, name: t.cluster })
        if (t.filter_chain) refs.push({ typeUrl: TypeUrl.FilterChain, name: t.filter_chain })
      }
      return refs
    }
    default:
      return []
  }
}

function listenerRefs(l: Obj): ResourceRef[] {
  const refs: ResourceRef[] = []
  const fromHcm = (any: Obj | null | undefined) => {
    if (any?.type_url !== HCM) return
    const hcm = decodeResource(HCM, any.value) as Obj
    const rds = hcm.rds as Obj | null
    if (rds?.route_config_name) refs.push({ typeUrl: TypeUrl.RouteConfiguration, name: rds.route_config_name })
  }
  fromHcm((l.api_listener as Obj | null)?.api_listener)
  const chains = [...((l.filter_chains as Obj[]) ?? []), ...(l.default_filter_chain ? [l.default_filter_chain as Obj] : [])]
  for (const fc of chains) for (const f of (fc.filters as Obj[]) ?? []) fromHcm(f.typed_config)
  return refs
}

function routeRefs(rc: Obj): ResourceRef[] {
  const names = new Set<string>()
  for (const vh of (rc.virtual_hosts as Obj[]) ?? []) {
    for (const r of (vh.routes as Obj[]) ?? []) {
      const action = r.route as Obj | null
      if (!action) continue
      if (action.cluster) names.add(action.cluster)
      for (const wc of ((action.weighted_clusters as Obj | null)?.clusters as Obj[]) ?? []) if (wc.name) names.add(wc.name)
    }
  }
  return [...names].map((name) => ({ typeUrl: TypeUrl.Cluster, name }))
}

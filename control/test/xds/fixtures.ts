/** Standard and OmniRelay resources for tests, built through the public cache API. */
import { encodeResource } from '@omnirelay/runtime/xds/proto/resource-codec.ts'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { makeResource, Snapshot, type ResourceOptions, type XdsResource } from '../../src/xds/index.ts'

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router'

/** A client-side (gRPC-style) listener: api_listener with an HCM that fetches `routeName` over ADS. */
export function listener(name: string, routeName: string): XdsResource {
  const hcm = encodeResource(HCM, {
    rds: { route_config_name: routeName, config_source: { ads: {}, resource_api_version: 'V3' } },
    http_filters: [{ name: 'router', typed_config: { type_url: ROUTER, value: encodeResource(ROUTER, {}) } }],
  })
  return makeResource(TypeUrl.Listener, name, { name, api_listener: { api_listener: { type_url: HCM, value: hcm } } })
}

export function routeConfig(name: string, domain: string, cluster: string): XdsResource {
  return makeResource(TypeUrl.RouteConfiguration, name, {
    name,
    virtual_hosts: [{ name: 'vh', domains: [domain, '*'], routes: [{ match: { prefix: '' }, route: { cluster } }] }],
  })
}

export function cluster(name: string, lbPolicy = 'ROUND_ROBIN'): XdsResource {
  return makeResource(TypeUrl.Cluster, name, {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
    lb_policy: lbPolicy,
  })
}

export function endpoints(clusterName: string, ports: number[], host = '127.0.0.1'): XdsResource {
  return makeResource(TypeUrl.ClusterLoadAssignment, clusterName, {
    cluster_name: clusterName,
    endpoints: [
      {
        locality: { region: 'r', zone: 'z', sub_zone: 's' },
        load_balancing_weight: { value: 1 },
        lb_endpoints: ports.map((port) => ({
          endpoint: { address: { socket_address: { address: host, port_value: port } } },
          health_status: 'HEALTHY',
        })),
      },
    ],
  })
}

export function bundle(name: string, digest: string, opts?: ResourceOptions & { hostKind?: string; abi?: string }): XdsResource {
  return makeResource(
    TypeUrl.BundleRef,
    name,
    { name, version: '1.0.0', digest, registry: 'http://127.0.0.1:1/registry', host_kind: opts?.hostKind ?? 'wasm', abi: opts?.abi ?? 'proxy-wasm/0.2.1' },
    opts,
  )
}

export function filterChain(name: string, bundles: string[], opts?: ResourceOptions): XdsResource {
  return makeResource(TypeUrl.FilterChain, name, { name, filters: bundles.map((b) => ({ name: b, bundle: b, failure_policy: 'fail-closed' })) }, opts)
}

/** A consistent snapshot: listener -> route -> cluster -> endpoints, for each service. */
export function serviceSnapshot(epoch: number, services: { name: string; ports: number[] }[], extra: XdsResource[] = []): Snapshot {
  const rs: XdsResource[] = []
  for (const s of services) {
    rs.push(listener(s.name, `${s.name}-route`), routeConfig(`${s.name}-route`, s.name, `${s.name}-cluster`), cluster(`${s.name}-cluster`), endpoints(`${s.name}-cluster`, s.ports))
  }
  return new Snapshot(epoch, [...rs, ...extra])
}

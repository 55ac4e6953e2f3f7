/**
 * MeshConfig <-> xDS resources, both directions in one place so they cannot drift.
 *
 * Standard Envoy v3 fields carry what they describe, so a standard client reads something
 * meaningful: listener address, HCM with RDS, routes (path match, cluster / weighted
 * clusters / direct response / redirect, rewrites, timeouts, retries), EDS clusters (lb
 * policy, connect timeout) and their endpoints. What Envoy has no field for, or what
 * OmniRelay means differently, travels in `metadata.filter_metadata["omnirelay"]`: listener
 * mode and filter chain; route host patterns (OmniRelay matches routes in one ordered list,
 * hosts being one condition, so all routes sit in one `*` virtual host), methods, header
 * conditions, listener scope, filter chain, direct-response headers and the full retry
 * policy; cluster http2/TLS/health/outlier/circuit-breaker settings. OmniRelay reads the
 * standard fields back for what they carry and the metadata for the rest.
 */
import type { DirectResponse, HeaderMatch, PathMatch, Redirect } from '../../config/types.ts'
import type { Capability, FailurePolicy, Isolation, Quotas } from '../../pipeline/filter.ts'
import type { ClusterConfig, RetryPolicy, RoutePolicy } from '../../upstream/types.ts'
import { decodeResource, encodeResource } from '../proto/resource-codec.ts'
import { jsonToStruct, structToJson, type PbStruct } from '../proto/struct.ts'
import { TypeUrl } from '../type-urls.ts'
import type { MeshBundle, MeshConfig, MeshFilterChain, MeshListener, MeshRoute, MeshSplit } from './mesh-config.ts'

export const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'
const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router'
/** Key of OmniRelay's entry in `metadata.filter_metadata`. */
export const METADATA_KEY = 'omnirelay'
const PAGE = 65536

/** A resource before marshaling: type, name and the message as proto-field object. */
export interface WireResource {
  typeUrl: string
  name: string
  message: Record<string, unknown>
}

/** A resource the data plane cannot map; `path` names it (`RouteConfiguration edge: routes[2]`). */
export class MappingError extends Error {
  readonly code = 'XDS_MAPPING_INVALID'
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`)
    this.name = 'MappingError'
  }
}

type Obj = Record<string, any>

const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' }
const REDIRECT_CODES: Record<number, string> = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
}
const REDIRECT_STATUS: Record<string, number> = Object.fromEntries(Object.entries(REDIRECT_CODES).map(([k, v]) => [v, Number(k)]))

function metadata(o: Record<string, unknown>): Obj {
  return { filter_metadata: { [METADATA_KEY]: jsonToStruct(o) } }
}

function readMetadata(msg: Obj): Obj {
  return structToJson((msg.metadata as Obj | null)?.filter_metadata?.[METADATA_KEY] as PbStruct | undefined)
}

function duration(ms: number): Obj {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 }
}

function ms(d: Obj | null | undefined): number | undefined {
  if (d == null) return undefined
  return Number(d.seconds ?? 0) * 1000 + Math.round(Number(d.nanos ?? 0) / 1_000_000)
}

/**
 * The resources of one snapshot, in no particular order (the cache orders delivery).
 * One RouteConfiguration per listener, named after it, with the routes that apply to it.
 *
 * @example
 * for (const r of meshToResources(mesh)) makeResource(r.typeUrl, r.name, r.message)
 */
export function meshToResources(mesh: MeshConfig): WireResource[] {
  const out: WireResource[] = []
  for (const c of mesh.clusters) {
    out.push({ typeUrl: TypeUrl.Cluster, name: c.name, message: clusterMessage(c) })
    out.push({ typeUrl: TypeUrl.ClusterLoadAssignment, name: c.name, message: endpointsMessage(c) })
  }
  for (const b of mesh.bundles) out.push({ typeUrl: TypeUrl.BundleRef, name: b.name, message: bundleMessage(b) })
  for (const fc of mesh.filterChains) out.push({ typeUrl: TypeUrl.FilterChain, name: fc.name, message: chainMessage(fc) })
  for (const s of mesh.splits) out.push({ typeUrl: TypeUrl.RolloutSplit, name: s.name, message: splitMessage(s) })
  for (const l of mesh.listeners) {
    out.push({ typeUrl: TypeUrl.Listener, name: l.name, message: listenerMessage(l) })
    const routes = mesh.routes.filter((r) => r.listeners.length === 0 || r.listeners.includes(l.name))
    out.push({
      typeUrl: TypeUrl.RouteConfiguration,
      name: l.name,
      message: { name: l.name, virtual_hosts: [{ name: METADATA_KEY, domains: ['*'], routes: routes.map((r) => routeMessage(r, mesh.routes.indexOf(r))) }] },
    })
  }
  return out
}

function listenerMessage(l: MeshListener): Obj {
  const hcm = encodeResource(HCM_TYPE, {
    stat_prefix: l.name,
    codec_type: l.http2 ? 'HTTP2' : 'AUTO',
    rds: { route_config_name: l.name, config_source: ADS_SOURCE },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { type_url: ROUTER_TYPE, value: encodeResource(ROUTER_TYPE, {}) } }],
  })
  const meta: Obj = { mode: l.mode, http2: l.http2 }
  if (l.filterChain) meta.filterChain = l.filterChain
  return {
    name: l.name,
    address: { socket_address: { address: l.address, port_value: l.port } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { type_url: HCM_TYPE, value: hcm } }] }],
    metadata: metadata(meta),
  }
}

function pathMatch(p: PathMatch): Obj {
  if ('exact' in p) return { path: p.exact }
  if ('prefix' in p) return { prefix: p.prefix }
  return { safe_regex: { regex: p.regex } }
}

function headerMatcher(h: HeaderMatch): Obj {
  const m: Obj = { name: h.name, invert_match: h.invert }
  if (h.exact !== undefined) m.string_match = { exact: h.exact }
  else if (h.regex !== undefined) m.string_match = { safe_regex: { regex: h.regex } }
  else m.present_match = h.present ?? true
  return m
}

// `order` is the route's place in the whole list: a route shared by several listeners arrives
// once per listener, and the data plane rebuilds the one ordered list from it.
function routeMessage(r: MeshRoute, order: number): Obj {
  const meta: Obj = { order, hosts: r.match.hosts, methods: r.match.methods, headers: r.match.headers.map((h) => ({ ...h })) }
  if (r.listeners.length) meta.listeners = r.listeners
  if (r.filterChain) meta.filterChain = r.filterChain
  const msg: Obj = { name: r.name, match: { ...pathMatch(r.match.path), headers: r.match.headers.map(headerMatcher) } }
  if (r.directResponse) {
    msg.direct_response = { status: r.directResponse.status, body: { inline_string: r.directResponse.body } }
    meta.directHeaders = Object.fromEntries(r.directResponse.headers)
  } else if (r.redirect) {
    const rd: Obj = { response_code: REDIRECT_CODES[r.redirect.status] ?? 'MOVED_PERMANENTLY', strip_query: r.redirect.stripQuery }
    if (r.redirect.scheme) rd.scheme_redirect = r.redirect.scheme
    if (r.redirect.host) rd.host_redirect = r.redirect.host
    if (r.redirect.path) rd.path_redirect = r.redirect.path
    msg.redirect = rd
  } else {
    const action: Obj = { timeout: duration(r.policy.requestTimeoutMs), idle_timeout: duration(r.policy.idleTimeoutMs) }
    if (r.cluster !== undefined) action.cluster = r.cluster
    else action.weighted_clusters = { clusters: (r.weightedClusters ?? []).map((w) => ({ name: w.cluster, weight: { value: w.weight } })) }
    if (r.prefixRewrite !== undefined) action.prefix_rewrite = r.prefixRewrite
    if (r.hostRewrite !== undefined) action.host_rewrite_literal = r.hostRewrite
    if (r.policy.retry) {
      action.retry_policy = { retry_on: r.policy.retry.retryOn.join(','), num_retries: { value: r.policy.retry.maxRetries } }
      meta.retry = { ...r.policy.retry }
    }
    msg.route = action
  }
  msg.metadata = metadata(meta)
  return msg
}

function clusterMessage(c: ClusterConfig): Obj {
  const meta: Obj = { http2: c.http2, maxConnectionsPerEndpoint: c.maxConnectionsPerEndpoint, circuitBreaker: { ...c.circuitBreaker } }
  if (c.tls) meta.tls = stripUndefined(c.tls)
  if (c.healthCheck) meta.healthCheck = stripUndefined(c.healthCheck)
  if (c.outlierDetection) meta.outlierDetection = { ...c.outlierDetection }
  return {
    name: c.name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: c.name },
    connect_timeout: duration(c.connectTimeoutMs),
    lb_policy: c.loadBalancing === 'least-request' ? 'LEAST_REQUEST' : 'ROUND_ROBIN',
    metadata: metadata(meta),
  }
}

function endpointsMessage(c: ClusterConfig): Obj {
  return {
    cluster_name: c.name,
    endpoints: [
      {
        lb_endpoints: c.endpoints.map((e) => ({
          endpoint: { address: { socket_address: { address: e.host, port_value: e.port } } },
          ...(e.weight !== undefined ? { load_balancing_weight: { value: e.weight } } : {}),
        })),
      },
    ],
  }
}

function bundleMessage(b: MeshBundle): Obj {
  return { name: b.name, version: b.version, digest: b.digest, registry: b.registry, host_kind: b.hostKind, abi: b.abi }
}

function chainMessage(fc: MeshFilterChain): Obj {
  return {
    name: fc.name,
    filters: fc.filters.map((f) => ({
      name: f.name,
      bundle: f.bundle,
      ...(f.config !== undefined ? { config: jsonToStruct(f.config) } : {}),
      failure_policy: f.failurePolicy,
      isolation: f.isolation,
      quotas: {
        fuel: f.quotas.fuel ?? 0,
        memory_pages: f.quotas.memoryBytes === undefined ? 0 : Math.ceil(f.quotas.memoryBytes / PAGE),
        timeout_ms: f.quotas.timeoutMs ?? 0,
        max_body_bytes: f.quotas.maxBodyBytes ?? 0,
      },
      capabilities: f.capabilities,
      callout_clusters: f.calloutClusters ?? [],
    })),
  }
}

function splitMessage(s: MeshSplit): Obj {
  return {
    name: s.name,
    targets: s.targets.map((t) => ({ variant: t.variant, weight: t.weight, cluster: t.cluster ?? '', filter_chain: t.filterChain ?? '' })),
    pin_header: s.pinHeader ?? '',
    rollout: s.rollout ?? '',
    sticky_header: s.stickyHeader ?? '',
    sticky_cookie: s.stickyCookie ?? '',
  }
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
}

// ---------------------------------------------------------------------------------------------
// Back: decoded resources -> MeshConfig (the data plane).

/** Decoded resources held by the data plane: type URL -> name -> message (as `decodeResource` returns). */
export type HeldResources = ReadonlyMap<string, ReadonlyMap<string, Obj>>

/** Decodes one received resource (bytes) for `HeldResources`. */
export function decodeWire(typeUrl: string, value: Uint8Array): Obj {
  return decodeResource(typeUrl, value)
}

/**
 * Rebuilds the mesh config from everything held. Throws `MappingError` naming the resource
 * (and field) that cannot be mapped; references are checked later by the config validator.
 */
export function resourcesToMesh(held: HeldResources): MeshConfig {
  const of = (t: string) => held.get(t) ?? new Map<string, Obj>()
  const endpoints = of(TypeUrl.ClusterLoadAssignment)
  const routeConfigs = of(TypeUrl.RouteConfiguration)
  const mesh: MeshConfig = { listeners: [], routes: [], clusters: [], filterChains: [], bundles: [], splits: [] }
  for (const [name, c] of of(TypeUrl.Cluster)) mesh.clusters.push(readCluster(name, c, endpoints.get(name)))
  for (const [name, b] of of(TypeUrl.BundleRef)) mesh.bundles.push(readBundle(name, b))
  for (const [name, fc] of of(TypeUrl.FilterChain)) mesh.filterChains.push(readChain(name, fc))
  for (const [name, s] of of(TypeUrl.RolloutSplit)) mesh.splits.push(readSplit(name, s))
  const seenRoutes = new Map<string, MeshRoute>()
  const order = new Map<MeshRoute, number>()
  for (const [name, l] of of(TypeUrl.Listener)) {
    const listener = readListener(name, l)
    mesh.listeners.push(listener)
    const rdsName = routeConfigName(name, l)
    const rc = routeConfigs.get(rdsName)
    if (rc === undefined) throw new MappingError(`Listener ${name}`, `route configuration "${rdsName}" not received`)
    const vhosts = (rc.virtual_hosts as Obj[]) ?? []
    vhosts.forEach((vh, vi) => {
      ;((vh.routes as Obj[]) ?? []).forEach((r, ri) => {
        const path = `RouteConfiguration ${rdsName}: virtual_hosts[${vi}].routes[${ri}]`
        const route = readRoute(path, r)
        const prev = seenRoutes.get(route.name)
        // A route shared by several listeners arrives once per listener: keep one copy.
        if (prev === undefined) {
          seenRoutes.set(route.name, route)
          mesh.routes.push(route)
          const o = Number(readMetadata(r).order)
          order.set(route, Number.isFinite(o) ? o : Number.MAX_SAFE_INTEGER)
        }
      })
    })
  }
  // Stable sort: routes without an order (other control planes) keep their arrival order.
  mesh.routes.sort((a, b) => order.get(a)! - order.get(b)!)
  return mesh
}

function routeConfigName(name: string, l: Obj): string {
  for (const fc of (l.filter_chains as Obj[]) ?? []) {
    for (const f of (fc.filters as Obj[]) ?? []) {
      const any = f.typed_config as Obj | null
      if (any?.type_url !== HCM_TYPE) continue
      const hcm = decodeResource(HCM_TYPE, any.value as Uint8Array)
      const rds = (hcm.rds as Obj | null)?.route_config_name
      if (rds) return rds as string
    }
  }
  throw new MappingError(`Listener ${name}`, 'no HTTP connection manager with RDS')
}

function readListener(name: string, l: Obj): MeshListener {
  const sa = (l.address as Obj | null)?.socket_address as Obj | null
  if (!sa) throw new MappingError(`Listener ${name}`, 'address.socket_address is required')
  const meta = readMetadata(l)
  const out: MeshListener = {
    name,
    address: (sa.address as string) || '0.0.0.0',
    port: Number(sa.port_value ?? 0),
    mode: meta.mode ?? 'edge',
    http2: meta.http2 === true,
    filters: [],
  }
  if (typeof meta.filterChain === 'string' && meta.filterChain) out.filterChain = meta.filterChain
  return out
}

function readPath(path: string, m: Obj): PathMatch {
  switch (m.path_specifier) {
    case 'path':
      return { exact: m.path as string }
    case 'safe_regex':
      return { regex: (m.safe_regex as Obj).regex as string }
    case 'prefix':
    case undefined:
      return { prefix: (m.prefix as string) || '/' }
    default:
      throw new MappingError(`${path}.match`, `unsupported path match ${String(m.path_specifier)}`)
  }
}

function readRoute(path: string, r: Obj): MeshRoute {
  const meta = readMetadata(r)
  const m = (r.match as Obj | null) ?? {}
  const name = r.name as string
  if (!name) throw new MappingError(path, 'route needs a name')
  const route: MeshRoute = {
    name,
    listeners: Array.isArray(meta.listeners) ? (meta.listeners as string[]) : [],
    match: {
      hosts: Array.isArray(meta.hosts) ? (meta.hosts as string[]) : [],
      path: readPath(path, m),
      methods: Array.isArray(meta.methods) ? (meta.methods as string[]) : [],
      headers: Array.isArray(meta.headers) ? (meta.headers as HeaderMatch[]) : [],
    },
    policy: { requestTimeoutMs: 15_000, idleTimeoutMs: 60_000 },
    filters: [],
  }
  if (typeof meta.filterChain === 'string' && meta.filterChain) route.filterChain = meta.filterChain
  switch (r.action) {
    case 'route': {
      const a = r.route as Obj
      const policy: RoutePolicy = { requestTimeoutMs: ms(a.timeout) ?? 15_000, idleTimeoutMs: ms(a.idle_timeout) ?? 60_000 }
      if (meta.retry && typeof meta.retry === 'object') policy.retry = meta.retry as RetryPolicy
      else if (a.retry_policy) {
        policy.retry = {
          maxRetries: Number((a.retry_policy as Obj).num_retries?.value ?? 1),
          retryOn: String((a.retry_policy as Obj).retry_on ?? '').split(',').filter(Boolean) as RetryPolicy['retryOn'],
          budgetPercent: 20,
          minRetryConcurrency: 3,
          backoffMs: 25,
        }
      }
      route.policy = policy
      if (a.cluster_specifier === 'cluster') route.cluster = a.cluster as string
      else if (a.cluster_specifier === 'weighted_clusters') {
        route.weightedClusters = (((a.weighted_clusters as Obj).clusters as Obj[]) ?? []).map((w) => ({
          cluster: w.name as string,
          weight: Number((w.weight as Obj | null)?.value ?? 0),
        }))
      } else throw new MappingError(`${path}.route`, `unsupported cluster specifier ${String(a.cluster_specifier)}`)
      if (a.prefix_rewrite) route.prefixRewrite = a.prefix_rewrite as string
      if (a.host_rewrite_literal) route.hostRewrite = a.host_rewrite_literal as string
      break
    }
    case 'direct_response': {
      const d = r.direct_response as Obj
      const body = d.body as Obj | null
      const direct: DirectResponse = {
        status: Number(d.status),
        body: (body?.inline_string as string | undefined) ?? '',
        headers: Object.entries((meta.directHeaders as Record<string, string> | undefined) ?? {}),
      }
      route.directResponse = direct
      break
    }
    case 'redirect': {
      const d = r.redirect as Obj
      const rd: Redirect = { status: REDIRECT_STATUS[d.response_code as string] ?? 301, stripQuery: d.strip_query === true }
      if (d.scheme_redirect) rd.scheme = d.scheme_redirect as 'http' | 'https'
      if (d.host_redirect) rd.host = d.host_redirect as string
      if (d.path_redirect) rd.path = d.path_redirect as string
      route.redirect = rd
      break
    }
    default:
      throw new MappingError(path, `unsupported route action ${String(r.action)}`)
  }
  return route
}

function readCluster(name: string, c: Obj, cla: Obj | undefined): ClusterConfig {
  if (c.type !== 'EDS') throw new MappingError(`Cluster ${name}`, `discovery type ${String(c.type)} is not supported (EDS only)`)
  if (cla === undefined) throw new MappingError(`Cluster ${name}`, 'endpoints (ClusterLoadAssignment) not received')
  const meta = readMetadata(c)
  const endpoints = ((cla.endpoints as Obj[]) ?? []).flatMap((loc) =>
    ((loc.lb_endpoints as Obj[]) ?? []).map((e) => {
      const sa = (e.endpoint as Obj | null)?.address?.socket_address as Obj | undefined
      if (!sa) throw new MappingError(`ClusterLoadAssignment ${name}`, 'endpoint without socket_address')
      const w = (e.load_balancing_weight as Obj | null)?.value
      return { host: sa.address as string, port: Number(sa.port_value), ...(w ? { weight: Number(w) } : {}) }
    }),
  )
  const out: ClusterConfig = {
    name,
    endpoints,
    loadBalancing: c.lb_policy === 'LEAST_REQUEST' ? 'least-request' : 'round-robin',
    http2: meta.http2 === true,
    maxConnectionsPerEndpoint: Number(meta.maxConnectionsPerEndpoint ?? 64),
    connectTimeoutMs: ms(c.connect_timeout) ?? 5_000,
    circuitBreaker: (meta.circuitBreaker as ClusterConfig['circuitBreaker']) ?? { maxConcurrent: 10_000, maxPending: 10_000 },
  }
  if (meta.tls) out.tls = meta.tls as ClusterConfig['tls']
  if (meta.healthCheck) out.healthCheck = meta.healthCheck as ClusterConfig['healthCheck']
  if (meta.outlierDetection) out.outlierDetection = meta.outlierDetection as ClusterConfig['outlierDetection']
  return out
}

function readBundle(name: string, b: Obj): MeshBundle {
  const kind = b.host_kind as string
  if (kind !== 'wasm' && kind !== 'quickjs' && kind !== 'native') throw new MappingError(`BundleRef ${name}`, `unknown host kind "${kind}"`)
  if (!/^sha256:[0-9a-f]{64}$/.test(b.digest as string)) throw new MappingError(`BundleRef ${name}`, 'digest must be sha256:<64 hex>')
  return { name, version: b.version as string, digest: b.digest as string, registry: b.registry as string, hostKind: kind, abi: b.abi as string }
}

function readChain(name: string, fc: Obj): MeshFilterChain {
  return {
    name,
    filters: ((fc.filters as Obj[]) ?? []).map((f) => {
      const q = (f.quotas as Obj | null) ?? {}
      const quotas: Quotas = {}
      if (Number(q.fuel) > 0) quotas.fuel = Number(q.fuel)
      if (Number(q.memory_pages) > 0) quotas.memoryBytes = Number(q.memory_pages) * PAGE
      if (Number(q.timeout_ms) > 0) quotas.timeoutMs = Number(q.timeout_ms)
      if (Number(q.max_body_bytes) > 0) quotas.maxBodyBytes = Number(q.max_body_bytes)
      const callouts = (f.callout_clusters as string[]) ?? []
      return {
        name: f.name as string,
        bundle: f.bundle as string,
        ...(f.config ? { config: structToJson(f.config as PbStruct) } : {}),
        failurePolicy: ((f.failure_policy as string) || 'fail-closed') as FailurePolicy,
        isolation: ((f.isolation as string) || 'shared') as Isolation,
        quotas,
        capabilities: ((f.capabilities as string[]) ?? []) as Capability[],
        ...(callouts.length ? { calloutClusters: callouts } : {}),
      }
    }),
  }
}

function readSplit(name: string, s: Obj): MeshSplit {
  const out: MeshSplit = {
    name,
    targets: ((s.targets as Obj[]) ?? []).map((t) => ({
      variant: t.variant as string,
      weight: Number(t.weight),
      ...(t.cluster ? { cluster: t.cluster as string } : {}),
      ...(t.filter_chain ? { filterChain: t.filter_chain as string } : {}),
    })),
  }
  if (s.pin_header) out.pinHeader = s.pin_header as string
  if (s.rollout) out.rollout = s.rollout as string
  if (s.sticky_header) out.stickyHeader = s.sticky_header as string
  if (s.sticky_cookie) out.stickyCookie = s.sticky_cookie as string
  return out
}

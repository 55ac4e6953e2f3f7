/**
 * One config epoch compiled for serving: per listener a route table whose routes carry
 * everything a request needs (filter chain, cluster object, metric children, prebuilt
 * direct responses). Built once per reload; requests hold the snapshot they started on,
 * so in-flight requests finish on the old epoch while new ones take the new one.
 */
import type { ListenerConfig, ProxyConfig, Redirect, RouteConfig } from '../config/types.ts'
import type { ProxyMetrics, RouteMetrics } from '../observability/proxy-metrics.ts'
import { EMPTY_CHAIN, makeChain, type ChainEntry, type FilterChain } from '../pipeline/chain.ts'
import type { BuiltFilters } from '../pipeline/build-filters.ts'
import { compileRoute, RouteTable } from '../routing/route-table.ts'
import type { Cluster, ClusterManager, RoutePolicy } from '../upstream/types.ts'

export const Action = { Cluster: 0, Weighted: 1, Direct: 2, Redirect: 3 } as const

export interface WeightedTargets {
  clusters: (Cluster | undefined)[]
  names: string[]
  metrics: RouteMetrics[]
  /** Cumulative weights; pick = first index with cumulative > random * total. */
  cumulative: number[]
  total: number
}

export interface RouteData {
  readonly name: string
  readonly action: number
  readonly chain: FilterChain
  readonly cluster: Cluster | undefined
  readonly clusterName: string
  readonly weighted: WeightedTargets | undefined
  readonly direct: { status: number; headers: string[]; body: Buffer } | undefined
  readonly redirect: Redirect | undefined
  readonly policy: RoutePolicy
  readonly metrics: RouteMetrics
  readonly prefix: string | undefined
  readonly prefixRewrite: string | undefined
  readonly hostRewrite: string | undefined
}

export interface ListenerState {
  readonly config: ListenerConfig
  readonly table: RouteTable<RouteData>
  /** Metrics for requests no route matched. */
  readonly noRoute: RouteMetrics
  readonly snapshot: Snapshot
}

export class Snapshot {
  readonly epoch: number
  readonly config: ProxyConfig
  readonly filters: BuiltFilters
  readonly listeners = new Map<string, ListenerState>()
  /** Requests running on this epoch. */
  active = 0
  #retired = false
  #onDrained: (() => void) | undefined

  constructor(epoch: number, config: ProxyConfig, filters: BuiltFilters, clusters: ClusterManager, metrics: ProxyMetrics) {
    this.epoch = epoch
    this.config = config
    this.filters = filters
    for (const l of config.listeners) {
      const routes = config.routes.filter((r) => r.listeners.length === 0 || r.listeners.includes(l.name))
      const compiled = routes.map((r) => compileRoute(r, buildRouteData(l, r, filters, clusters, metrics)))
      this.listeners.set(l.name, { config: l, table: new RouteTable(compiled), noRoute: metrics.route(l.name, 'none', 'none'), snapshot: this })
    }
  }

  release(): void {
    if (--this.active === 0 && this.#retired) this.#drained()
  }

  /** No new requests will start here; `onDrained` runs once the last one finished. */
  retire(onDrained: () => void): void {
    this.#retired = true
    this.#onDrained = onDrained
    if (this.active === 0) this.#drained()
  }

  #drained(): void {
    const f = this.#onDrained
    this.#onDrained = undefined
    f?.()
  }
}

function chainFor(names: string[], filters: BuiltFilters): FilterChain {
  if (names.length === 0) return EMPTY_CHAIN
  const entries: ChainEntry[] = []
  for (const n of names) {
    const b = filters.get(n)
    if (b) entries.push(b.entry)
  }
  return makeChain(entries)
}

function buildRouteData(l: ListenerConfig, r: RouteConfig, filters: BuiltFilters, clusters: ClusterManager, metrics: ProxyMetrics): RouteData {
  const chain = chainFor([...l.filters, ...r.filters], filters)
  let action: number = Action.Cluster
  let weighted: WeightedTargets | undefined
  let direct: RouteData['direct']
  if (r.weightedClusters) {
    action = Action.Weighted
    let total = 0
    weighted = { clusters: [], names: [], metrics: [], cumulative: [], total: 0 }
    for (const w of r.weightedClusters) {
      total += w.weight
      weighted.clusters.push(clusters.get(w.cluster))
      weighted.names.push(w.cluster)
      weighted.metrics.push(metrics.route(l.name, r.name, w.cluster))
      weighted.cumulative.push(total)
    }
    weighted.total = total
  } else if (r.directResponse) {
    action = Action.Direct
    const body = Buffer.from(r.directResponse.body)
    const headers: string[] = []
    let hasType = false
    for (const [k, v] of r.directResponse.headers) {
      headers.push(k, v)
      if (k === 'content-type') hasType = true
    }
    if (!hasType && body.length) headers.push('content-type', 'text/plain; charset=utf-8')
    direct = { status: r.directResponse.status, headers, body }
  } else if (r.redirect) action = Action.Redirect
  const clusterName = r.cluster ?? (weighted ? weighted.names[0]! : action === Action.Direct ? 'direct' : 'redirect')
  return {
    name: r.name,
    action,
    chain,
    cluster: r.cluster !== undefined ? clusters.get(r.cluster) : undefined,
    clusterName,
    weighted,
    direct,
    redirect: r.redirect,
    policy: r.policy,
    metrics: metrics.route(l.name, r.name, clusterName),
    prefix: 'prefix' in r.match.path ? r.match.path.prefix : undefined,
    prefixRewrite: r.prefixRewrite,
    hostRewrite: r.hostRewrite,
  }
}

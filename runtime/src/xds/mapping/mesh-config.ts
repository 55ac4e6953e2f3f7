/**
 * The mesh's view of one OmniRelay config: what MeshKit central holds per group of data
 * planes and what travels over xDS. It is the proxy's config (docs/configuration.md) with
 * filters grouped into named filter chains that reference signed bundles, plus rollout
 * splits. `wire.ts` maps it to xDS resources and back.
 */
import type { ListenerConfig, RouteConfig } from '../../config/types.ts'
import type { Capability, FailurePolicy, Isolation, Quotas } from '../../pipeline/filter.ts'
import type { ClusterConfig } from '../../upstream/types.ts'

/** A filter instance in a chain: a bundle (by BundleRef name) with its config and grants. */
export interface MeshFilter {
  name: string
  /** Name of a BundleRef (`<bundle name>@<version>`). */
  bundle: string
  config?: Record<string, unknown>
  failurePolicy: FailurePolicy
  isolation: Isolation
  quotas: Quotas
  capabilities: Capability[]
  calloutClusters?: string[]
}

export interface MeshFilterChain {
  name: string
  filters: MeshFilter[]
}

/** A signed bundle pinned by digest, and where to fetch it. */
export interface MeshBundle {
  /** `<bundle name>@<version>`. */
  name: string
  version: string
  digest: string
  /** Registry base URL; the data plane fetches `<registry>/v1/blobs/<digest>`. */
  registry: string
  hostKind: 'wasm' | 'quickjs' | 'native'
  abi: string
}

export interface MeshSplitTarget {
  variant: string
  /** Basis points; a split's targets sum to 10000. */
  weight: number
  cluster?: string
  filterChain?: string
}

export interface MeshSplit {
  name: string
  targets: MeshSplitTarget[]
  pinHeader?: string
  rollout?: string
  /** Sticky key of the per-request choice: a request header, else a cookie, else the request id. */
  stickyHeader?: string
  stickyCookie?: string
}

export type MeshListener = ListenerConfig & { filterChain?: string }
export type MeshRoute = RouteConfig & { filterChain?: string }

export interface MeshConfig {
  listeners: MeshListener[]
  /** In match order. */
  routes: MeshRoute[]
  clusters: ClusterConfig[]
  filterChains: MeshFilterChain[]
  bundles: MeshBundle[]
  splits: MeshSplit[]
}

/** Proxy filter name of a chain's filter instance (filters are global by name in the proxy config). */
export function filterInstanceName(chain: string, filter: string): string {
  return `${chain}.${filter}`
}

/**
 * Type URLs of the resources that travel over ADS, and the order in which a
 * change is delivered (make-before-break: what others point to comes first).
 */
export const TypeUrl = {
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  BundleRef: 'type.googleapis.com/omnirelay.v1.BundleRef',
  FilterChain: 'type.googleapis.com/omnirelay.v1.FilterChain',
  RolloutSplit: 'type.googleapis.com/omnirelay.v1.RolloutSplit',
  /** End-of-epoch marker; always delivered last (see resources.proto). */
  Epoch: 'type.googleapis.com/omnirelay.v1.Epoch',
} as const

/** Name of the single Epoch resource of a snapshot. */
export const EPOCH_RESOURCE_NAME = 'epoch'
export type KnownTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl]

/**
 * Make-before-break: clusters and their endpoints exist before anything routes
 * to them; bundles before the chains that load them; chains and splits before
 * the listeners/routes that use them. Removals go in the reverse order. The
 * Epoch marker closes a delivery pass (servers send it after the removals too).
 */
export const DELIVERY_ORDER: readonly string[] = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.BundleRef,
  TypeUrl.FilterChain,
  TypeUrl.RolloutSplit,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
  TypeUrl.Epoch,
]

/**
 * Types whose SotW response carries the complete set (a name missing from a
 * response is deleted) and for which an empty first request means wildcard.
 * Envoy defines this for LDS and CDS; OmniRelay's own types follow the same rule
 * because the data plane needs all of them.
 */
const FULL_STATE = new Set<string>([
  TypeUrl.Listener,
  TypeUrl.Cluster,
  TypeUrl.BundleRef,
  TypeUrl.FilterChain,
  TypeUrl.RolloutSplit,
  TypeUrl.Epoch,
])

export function isFullStateType(typeUrl: string): boolean {
  return FULL_STATE.has(typeUrl)
}

/** Rank in DELIVERY_ORDER; unknown types go last, in name order. */
export function deliveryRank(typeUrl: string): number {
  const i = DELIVERY_ORDER.indexOf(typeUrl)
  return i === -1 ? DELIVERY_ORDER.length : i
}

export function compareDelivery(a: string, b: string): number {
  return deliveryRank(a) - deliveryRank(b) || (a < b ? -1 : a > b ? 1 : 0)
}

/** `type.googleapis.com/pkg.Msg` -> `pkg.Msg` */
export function messageNameOf(typeUrl: string): string {
  const slash = typeUrl.lastIndexOf('/')
  return slash === -1 ? typeUrl : typeUrl.slice(slash + 1)
}

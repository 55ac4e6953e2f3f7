/**
 * Capability negotiation. A data plane announces what it can run in its Node:
 * `client_features` (feature strings) and metadata `omnirelay.abis` /
 * `omnirelay.host_kinds` (lists). A resource variant may require some of them;
 * the cache serves each client the best variant it can run, or withholds the
 * resource and says why.
 */
import type { XdsNode } from '@omnirelay/runtime/xds/proto/messages.ts'

/** Metadata keys the OmniRelay client sets (see runtime/src/xds/client). */
export const CapabilityKey = {
  Abis: 'omnirelay.abis',
  HostKinds: 'omnirelay.host_kinds',
} as const

export interface ClientCapabilities {
  readonly abis: ReadonlySet<string>
  readonly hostKinds: ReadonlySet<string>
  readonly features: ReadonlySet<string>
  /** Canonical form; clients with equal keys get identical views (memoized per snapshot). */
  readonly key: string
}

/** What a resource variant needs from the client; every listed item must be present. */
export interface Requirement {
  readonly abis?: readonly string[]
  readonly hostKinds?: readonly string[]
  readonly features?: readonly string[]
}

export function capabilitiesOf(node: XdsNode | undefined): ClientCapabilities {
  const abis = listOf(node?.metadata[CapabilityKey.Abis])
  const hostKinds = listOf(node?.metadata[CapabilityKey.HostKinds])
  const features = [...new Set(node?.clientFeatures ?? [])].sort()
  return {
    abis: new Set(abis),
    hostKinds: new Set(hostKinds),
    features: new Set(features),
    key: `a=${abis.join(',')};h=${hostKinds.join(',')};f=${features.join(',')}`,
  }
}

/** Accepts a list or a comma-separated string; anything else counts as nothing. */
function listOf(v: unknown): string[] {
  const items = Array.isArray(v) ? v : typeof v === 'string' ? v.split(',') : []
  const out = new Set<string>()
  for (const i of items) if (typeof i === 'string' && i.trim() !== '') out.add(i.trim())
  return [...out].sort()
}

/** `undefined` when satisfied, else the reason (stable wording, first missing item). */
export function unmetRequirement(req: Requirement | undefined, caps: ClientCapabilities): string | undefined {
  if (req === undefined) return undefined
  for (const a of req.abis ?? []) if (!caps.abis.has(a)) return `abi ${a} not supported`
  for (const h of req.hostKinds ?? []) if (!caps.hostKinds.has(h)) return `host kind ${h} not supported`
  for (const f of req.features ?? []) if (!caps.features.has(f)) return `client feature ${f} not announced`
  return undefined
}

/**
 * The discovery messages (envoy.service.discovery.v3) as plain TypeScript shapes,
 * and their codecs. Both ends use these; responses are encoded only by the server's
 * hand-written encoder (control/src/xds/wire/response-encoder.ts), which splices in cached
 * resource bytes.
 */
import type protobuf from 'protobufjs'
import { protoType } from './root.ts'
import { jsonToStruct, structToJson, type JsonValue, type PbStruct } from './struct.ts'

export interface XdsNode {
  id: string
  cluster: string
  metadata: Record<string, JsonValue>
  userAgentName: string
  userAgentVersion: string
  clientFeatures: string[]
  locality?: { region: string; zone: string; subZone: string }
}

export interface RpcStatus {
  code: number
  message: string
}

export interface DiscoveryRequest {
  versionInfo: string
  node?: XdsNode
  resourceNames: string[]
  typeUrl: string
  responseNonce: string
  errorDetail?: RpcStatus
}

export interface DeltaDiscoveryRequest {
  node?: XdsNode
  typeUrl: string
  resourceNamesSubscribe: string[]
  resourceNamesUnsubscribe: string[]
  initialResourceVersions: Record<string, string>
  responseNonce: string
  errorDetail?: RpcStatus
}

export interface AnyMessage {
  typeUrl: string
  value: Uint8Array
}

export interface DiscoveryResponse {
  versionInfo: string
  resources: AnyMessage[]
  typeUrl: string
  nonce: string
  controlPlane?: string
}

export interface DeltaResource {
  name: string
  version: string
  /** Absent when the server only tells that the resource exists (not used here). */
  resource?: AnyMessage
}

export interface DeltaDiscoveryResponse {
  systemVersionInfo: string
  resources: DeltaResource[]
  typeUrl: string
  nonce: string
  removedResources: string[]
  controlPlane?: string
}

const T = {
  req: () => protoType('envoy.service.discovery.v3.DiscoveryRequest'),
  res: () => protoType('envoy.service.discovery.v3.DiscoveryResponse'),
  dreq: () => protoType('envoy.service.discovery.v3.DeltaDiscoveryRequest'),
  dres: () => protoType('envoy.service.discovery.v3.DeltaDiscoveryResponse'),
}

/* ---------- wire object shapes (protobufjs, keepCase) ---------- */

interface WireNode {
  id?: string
  cluster?: string
  metadata?: PbStruct
  user_agent_name?: string
  user_agent_version?: string
  client_features?: string[]
  locality?: { region?: string; zone?: string; sub_zone?: string }
}
interface WireStatus {
  code?: number
  message?: string
}
interface WireAny {
  type_url?: string
  value?: Uint8Array
}

function nodeFromWire(n: WireNode | null | undefined): XdsNode | undefined {
  if (n == null) return undefined
  const node: XdsNode = {
    id: n.id ?? '',
    cluster: n.cluster ?? '',
    metadata: structToJson(n.metadata),
    userAgentName: n.user_agent_name ?? '',
    userAgentVersion: n.user_agent_version ?? '',
    clientFeatures: [...(n.client_features ?? [])],
  }
  if (n.locality != null) {
    node.locality = { region: n.locality.region ?? '', zone: n.locality.zone ?? '', subZone: n.locality.sub_zone ?? '' }
  }
  return node
}

function nodeToWire(n: XdsNode | undefined): WireNode | undefined {
  if (n === undefined) return undefined
  return {
    id: n.id,
    cluster: n.cluster,
    metadata: jsonToStruct(n.metadata),
    user_agent_name: n.userAgentName,
    user_agent_version: n.userAgentVersion,
    client_features: n.clientFeatures,
    ...(n.locality ? { locality: { region: n.locality.region, zone: n.locality.zone, sub_zone: n.locality.subZone } } : {}),
  }
}

function statusFromWire(s: WireStatus | null | undefined): RpcStatus | undefined {
  return s == null ? undefined : { code: s.code ?? 0, message: s.message ?? '' }
}

function anyFromWire(a: WireAny): AnyMessage {
  return { typeUrl: a.type_url ?? '', value: a.value ?? new Uint8Array(0) }
}

function decode(t: protobuf.Type, bytes: Uint8Array): Record<string, unknown> {
  return t.decode(bytes) as unknown as Record<string, unknown>
}

function encode(t: protobuf.Type, obj: Record<string, unknown>): Buffer {
  const u8 = t.encode(t.fromObject(obj)).finish()
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength)
}

/* ---------- codecs ---------- */

/** Throws on malformed bytes (grpc-js turns that into an INTERNAL stream error). */
export function decodeDiscoveryRequest(bytes: Uint8Array): DiscoveryRequest {
  const m = decode(T.req(), bytes) as {
    version_info?: string; node?: WireNode; resource_names?: string[]; type_url?: string
    response_nonce?: string; error_detail?: WireStatus
  }
  const r: DiscoveryRequest = {
    versionInfo: m.version_info ?? '',
    resourceNames: [...(m.resource_names ?? [])],
    typeUrl: m.type_url ?? '',
    responseNonce: m.response_nonce ?? '',
  }
  const node = nodeFromWire(m.node)
  if (node) r.node = node
  const err = statusFromWire(m.error_detail)
  if (err) r.errorDetail = err
  return r
}

export function encodeDiscoveryRequest(r: DiscoveryRequest): Buffer {
  return encode(T.req(), {
    version_info: r.versionInfo,
    node: nodeToWire(r.node),
    resource_names: r.resourceNames,
    type_url: r.typeUrl,
    response_nonce: r.responseNonce,
    error_detail: r.errorDetail,
  })
}

export function decodeDeltaDiscoveryRequest(bytes: Uint8Array): DeltaDiscoveryRequest {
  const m = decode(T.dreq(), bytes) as {
    node?: WireNode; type_url?: string; resource_names_subscribe?: string[]; resource_names_unsubscribe?: string[]
    initial_resource_versions?: Record<string, string>; response_nonce?: string; error_detail?: WireStatus
  }
  const r: DeltaDiscoveryRequest = {
    typeUrl: m.type_url ?? '',
    resourceNamesSubscribe: [...(m.resource_names_subscribe ?? [])],
    resourceNamesUnsubscribe: [...(m.resource_names_unsubscribe ?? [])],
    initialResourceVersions: { ...(m.initial_resource_versions ?? {}) },
    responseNonce: m.response_nonce ?? '',
  }
  const node = nodeFromWire(m.node)
  if (node) r.node = node
  const err = statusFromWire(m.error_detail)
  if (err) r.errorDetail = err
  return r
}

export function encodeDeltaDiscoveryRequest(r: DeltaDiscoveryRequest): Buffer {
  return encode(T.dreq(), {
    node: nodeToWire(r.node),
    type_url: r.typeUrl,
    resource_names_subscribe: r.resourceNamesSubscribe,
    resource_names_unsubscribe: r.resourceNamesUnsubscribe,
    initial_resource_versions: r.initialResourceVersions,
    response_nonce: r.responseNonce,
    error_detail: r.errorDetail,
  })
}

export function decodeDiscoveryResponse(bytes: Uint8Array): DiscoveryResponse {
  const m = decode(T.res(), bytes) as {
    version_info?: string; resources?: WireAny[]; type_url?: string; nonce?: string; control_plane?: { identifier?: string }
  }
  const r: DiscoveryResponse = {
    versionInfo: m.version_info ?? '',
    resources: (m.resources ?? []).map(anyFromWire),
    typeUrl: m.type_url ?? '',
    nonce: m.nonce ?? '',
  }
  if (m.control_plane?.identifier) r.controlPlane = m.control_plane.identifier
  return r
}

export function decodeDeltaDiscoveryResponse(bytes: Uint8Array): DeltaDiscoveryResponse {
  const m = decode(T.dres(), bytes) as {
    system_version_info?: string; type_url?: string; nonce?: string; removed_resources?: string[]
    resources?: { name?: string; version?: string; resource?: WireAny }[]; control_plane?: { identifier?: string }
  }
  const r: DeltaDiscoveryResponse = {
    systemVersionInfo: m.system_version_info ?? '',
    resources: (m.resources ?? []).map((x) => {
      const d: DeltaResource = { name: x.name ?? '', version: x.version ?? '' }
      if (x.resource != null) d.resource = anyFromWire(x.resource)
      return d
    }),
    typeUrl: m.type_url ?? '',
    nonce: m.nonce ?? '',
    removedResources: [...(m.removed_resources ?? [])],
  }
  if (m.control_plane?.identifier) r.controlPlane = m.control_plane.identifier
  return r
}

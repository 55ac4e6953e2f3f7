/**
 * A resource as the cache holds it: marshaled once, when it is made. Each
 * variant keeps its encoded `Any` (for SotW) and encoded delta `Resource`, and a
 * content version, so streams only splice bytes and compare strings.
 */
import { createHash } from 'node:crypto'
import { encodeResource } from '@omnirelay/runtime/xds/proto/resource-codec.ts'
import { encodeAny, encodeDeltaResource } from '../wire/response-encoder.ts'
import type { Requirement } from './capabilities.ts'
import { referencesOf, type ResourceRef } from './references.ts'

export interface MarshaledVariant {
  readonly requires: Requirement | undefined
  /** Content hash of type URL + bytes: equal content, equal version, across snapshots. */
  readonly version: string
  /** The message bytes (Any.value). */
  readonly value: Uint8Array
  /** Encoded google.protobuf.Any. */
  readonly anyBytes: Buffer
  /** Encoded envoy.service.discovery.v3.Resource (name, version, Any). */
  readonly deltaBytes: Buffer
  /** What this variant points at (found once, when it is made). */
  readonly refs: readonly ResourceRef[]
}

export interface XdsResource {
  readonly typeUrl: string
  readonly name: string
  /** Best first; the client gets the first one whose requirement it meets. */
  readonly variants: readonly MarshaledVariant[]
}

/** A message as a plain object (proto field names) or already-encoded bytes. */
export type ResourceMessage = Record<string, unknown> | Uint8Array

export interface ResourceOptions {
  /** What a client must announce to receive `message`. */
  requires?: Requirement
  /**
   * Down-level rules, tried in order when the client does not meet `requires`:
   * an older form of the same resource for clients that cannot run the new one.
   * No match means the resource is withheld from that client.
   */
  downlevel?: readonly { requires?: Requirement; message: ResourceMessage }[]
}

/**
 * @example
 * const chain = makeResource(TypeUrl.FilterChain, 'edge', { name: 'edge', filters: [...] }, {
 *   requires: { hostKinds: ['quickjs'] },
 *   downlevel: [{ requires: { hostKinds: ['wasm'] }, message: wasmOnlyChain }],
 * })
 */
export function makeResource(typeUrl: string, name: string, message: ResourceMessage, opts: ResourceOptions = {}): XdsResource {
  const variants = [marshal(typeUrl, name, message, opts.requires)]
  for (const d of opts.downlevel ?? []) variants.push(marshal(typeUrl, name, d.message, d.requires))
  return { typeUrl, name, variants }
}

function marshal(typeUrl: string, name: string, message: ResourceMessage, requires: Requirement | undefined): MarshaledVariant {
  const value = message instanceof Uint8Array ? message : encodeResource(typeUrl, message)
  const version = createHash('sha256').update(typeUrl).update('\0').update(value).digest('base64url').slice(0, 16)
  const anyBytes = encodeAny(typeUrl, value)
  return { requires, version, value, anyBytes, deltaBytes: encodeDeltaResource(name, version, anyBytes), refs: referencesOf(typeUrl, name, value) }
}

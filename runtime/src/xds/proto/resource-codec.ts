/**
 * Typed resources <-> bytes, by type URL. Config objects use the proto field
 * names (snake_case), Struct fields stay `{ fields: ... }` unless converted with
 * `structToJson`.
 *
 * @example
 * const bytes = encodeResource(TypeUrl.BundleRef, { name: 'auth', digest: 'sha256:…' })
 * decodeResource(TypeUrl.BundleRef, bytes) // { name: 'auth', digest: 'sha256:…', ... }
 */
import { messageNameOf } from '../type-urls.ts'
import { protoType } from './root.ts'

export class ResourceCodecError extends Error {
  readonly code = 'XDS_RESOURCE_INVALID'
  constructor(
    message: string,
    readonly typeUrl: string,
  ) {
    super(message)
    this.name = 'ResourceCodecError'
  }
}

/**
 * Encodes a resource message given in proto3 JSON-ish form (enum names allowed).
 * Values protobufjs cannot convert are errors.
 */
export function encodeResource(typeUrl: string, message: Record<string, unknown>): Uint8Array {
  const t = lookup(typeUrl)
  let msg: protobuf.Message
  try {
    msg = t.fromObject(message)
  } catch (e) {
    throw new ResourceCodecError(`${messageNameOf(typeUrl)}: ${(e as Error).message}`, typeUrl)
  }
  const err = t.verify(msg)
  if (err !== null) throw new ResourceCodecError(`${messageNameOf(typeUrl)}: ${err}`, typeUrl)
  return t.encode(msg).finish()
}

/** Decodes to a plain object with defaults filled in; enums as names, 64-bit ints as strings. */
export function decodeResource(typeUrl: string, bytes: Uint8Array): Record<string, unknown> {
  const t = lookup(typeUrl)
  let msg: protobuf.Message
  try {
    msg = t.decode(bytes)
  } catch (e) {
    throw new ResourceCodecError(`${messageNameOf(typeUrl)}: ${(e as Error).message}`, typeUrl)
  }
  return t.toObject(msg, { longs: String, enums: String, defaults: true, arrays: true, objects: true, oneofs: true })
}

function lookup(typeUrl: string): protobuf.Type {
  try {
    return protoType(messageNameOf(typeUrl))
  } catch {
    throw new ResourceCodecError(`unknown resource type ${typeUrl}`, typeUrl)
  }
}

import type protobuf from 'protobufjs'

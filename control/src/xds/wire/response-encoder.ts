/**
 * Hand-written protobuf encoders for what the server sends. Resources arrive
 * already marshaled (an `Any` or a delta `Resource`, encoded once per snapshot),
 * so a response is a few header fields plus a splice of cached bytes: nothing is
 * re-serialized per client. Field numbers are from envoy/service/discovery/v3.
 */

const WT_LEN = 2

function varintSize(n: number): number {
  let size = 1
  while (n >= 0x80) {
    n = Math.floor(n / 128)
    size++
  }
  return size
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80
    n = Math.floor(n / 128)
  }
  buf[pos++] = n
  return pos
}

/** A length-delimited field's total size, given its payload length. */
function fieldSize(field: number, len: number): number {
  return varintSize((field << 3) | WT_LEN) + varintSize(len) + len
}

function writeBytesField(buf: Buffer, pos: number, field: number, bytes: Uint8Array): number {
  pos = writeVarint(buf, pos, (field << 3) | WT_LEN)
  pos = writeVarint(buf, pos, bytes.length)
  buf.set(bytes, pos)
  return pos + bytes.length
}

function writeStringField(buf: Buffer, pos: number, field: number, s: string, len: number): number {
  pos = writeVarint(buf, pos, (field << 3) | WT_LEN)
  pos = writeVarint(buf, pos, len)
  return pos + buf.write(s, pos, len, 'utf8')
}

/** Accumulates string/bytes fields, then writes them in one allocation. */
class MessageWriter {
  #fields: { field: number; s?: string; b?: Uint8Array; len: number }[] = []
  #size = 0

  string(field: number, s: string): this {
    if (s.length === 0) return this
    const len = Buffer.byteLength(s, 'utf8')
    this.#fields.push({ field, s, len })
    this.#size += fieldSize(field, len)
    return this
  }

  bytes(field: number, b: Uint8Array): this {
    this.#fields.push({ field, b, len: b.length })
    this.#size += fieldSize(field, b.length)
    return this
  }

  finish(): Buffer {
    const buf = Buffer.allocUnsafe(this.#size)
    let pos = 0
    for (const f of this.#fields) {
      pos = f.s !== undefined ? writeStringField(buf, pos, f.field, f.s, f.len) : writeBytesField(buf, pos, f.field, f.b!)
    }
    return buf
  }
}

/** google.protobuf.Any { type_url = 1; value = 2 } */
export function encodeAny(typeUrl: string, value: Uint8Array): Buffer {
  return new MessageWriter().string(1, typeUrl).bytes(2, value).finish()
}

/** envoy.service.discovery.v3.Resource { version = 1; resource = 2; name = 3 } */
export function encodeDeltaResource(name: string, version: string, anyBytes: Uint8Array): Buffer {
  return new MessageWriter().string(1, version).bytes(2, anyBytes).string(3, name).finish()
}

/** config.core.v3.ControlPlane { identifier = 1 } */
function encodeControlPlane(identifier: string): Buffer {
  return new MessageWriter().string(1, identifier).finish()
}

/**
 * DiscoveryResponse { version_info = 1; resources = 2 (Any); type_url = 4; nonce = 5; control_plane = 6 }
 *
 * @param anyBytes the cached, encoded `Any` of each resource.
 */
export function encodeDiscoveryResponseBytes(
  versionInfo: string,
  typeUrl: string,
  nonce: string,
  anyBytes: readonly Uint8Array[],
  controlPlane?: string,
): Buffer {
  const w = new MessageWriter().string(1, versionInfo)
  for (const a of anyBytes) w.bytes(2, a)
  w.string(4, typeUrl).string(5, nonce)
  if (controlPlane) w.bytes(6, encodeControlPlane(controlPlane))
  return w.finish()
}

/**
 * DeltaDiscoveryResponse { system_version_info = 1; resources = 2 (Resource); type_url = 4;
 * nonce = 5; removed_resources = 6; control_plane = 7 }
 *
 * @param resourceBytes the cached, encoded delta `Resource` of each resource.
 */
export function encodeDeltaDiscoveryResponseBytes(
  systemVersionInfo: string,
  typeUrl: string,
  nonce: string,
  resourceBytes: readonly Uint8Array[],
  removed: readonly string[],
  controlPlane?: string,
): Buffer {
  const w = new MessageWriter().string(1, systemVersionInfo)
  for (const r of resourceBytes) w.bytes(2, r)
  w.string(4, typeUrl).string(5, nonce)
  // An empty name is still a removal; write it even though strings usually skip when empty.
  for (const name of removed) w.bytes(6, Buffer.from(name, 'utf8'))
  if (controlPlane) w.bytes(7, encodeControlPlane(controlPlane))
  return w.finish()
}

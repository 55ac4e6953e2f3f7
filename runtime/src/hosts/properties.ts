/**
 * Property paths (proxy-wasm `proxy_get_property`, and the QuickJS host's `properties.get`)
 * resolved from a stream, serialized the way Envoy's proxy-wasm host does:
 *
 * - strings: raw UTF-8 bytes, except values read from headers (see {@link fromHeaders}): those
 *   are the header's own bytes, held as one character per byte (node's convention);
 * - integers (ports, codes, sizes, the epoch): 8-byte little-endian int64;
 * - booleans: one byte, 0 or 1;
 * - timestamps and durations: int64 nanoseconds, little-endian;
 * - header maps: the proxy-wasm map serialization (count, lengths, NUL-terminated bytes), of
 *   the headers' own bytes.
 *
 * Paths arrive as segments separated by NUL (what the Rust/Go/C++ SDKs send:
 * `request\0headers\0x-foo`) or, when no NUL is present, by dots (`request.headers.x-foo`).
 * Besides Envoy's well-known attributes we serve OmniRelay's own under `omnirelay.*`:
 * `route`, `cluster`, `epoch`, `peer_identity`, `request_id`, `filter_name`, `filter_version`.
 *
 * @example
 * getProperty(splitPropertyPath('request.path'), { stream, pluginName: 'authz' }) // '/api?x=1'
 * getProperty(['source', 'port'], ctx) // Uint8Array(8) little-endian int64
 */
import type { HttpStream } from '../pipeline/filter.ts'
import type { HeaderMap } from '../pipeline/header-map.ts'

export interface PropertyContext {
  /** Absent for calls made outside a request (root context, timers). */
  stream: HttpStream | undefined
  pluginName: string
  /** proxy-wasm vm id / root id; defaults to the plugin name. */
  vmId?: string
  filterVersion?: string
  /** Values the filter set with `set_property` on this stream (path joined with '.'). */
  custom?: Map<string, Uint8Array>
  /** The config epoch the filter was built for: `omnirelay.epoch` outside a request. */
  epoch?: number
}

export type PropertyValue = string | Uint8Array

const textDecoder = new TextDecoder()

/** Splits a raw path: NUL-separated segments, else dot-separated. Trailing empty segments are dropped. */
export function splitPropertyPath(raw: string | Uint8Array): string[] {
  const s = typeof raw === 'string' ? raw : textDecoder.decode(raw)
  const parts = s.includes('\0') ? s.split('\0') : s.split('.')
  while (parts.length && parts[parts.length - 1] === '') parts.pop()
  return parts
}

export function int64(n: number | bigint): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigInt64(0, typeof n === 'bigint' ? n : BigInt(Math.trunc(n)), true)
  return out
}

export function bool(b: boolean): Uint8Array {
  return Uint8Array.of(b ? 1 : 0)
}

/**
 * Whether the string value of `path` is read from a header map (or is ASCII): a host that hands
 * out bytes encodes it as latin1, giving the header's bytes back, as for header map reads.
 * Every `request.*` and `response.*` string is, but `response.code_details` (local reply
 * details, which may carry filter and config names in any script).
 */
export function fromHeaders(path: readonly string[]): boolean {
  return path[0] === 'request' || (path[0] === 'response' && path[1] !== 'code_details')
}

/** proxy-wasm map serialization of `[name, value]` pairs from a header map's flat array (latin1: the headers' bytes). */
export function serializePairs(flat: readonly string[]): Uint8Array {
  const n = flat.length >>> 1
  const encoded = flat.map((s) => Buffer.from(s, 'latin1'))
  let size = 4 + n * 8
  for (const e of encoded) size += e.length + 1
  const out = new Uint8Array(size)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, n, true)
  let p = 4
  for (let i = 0; i < encoded.length; i++, p += 4) dv.setUint32(p, encoded[i]!.length, true)
  for (const e of encoded) {
    out.set(e, p)
    p += e.length + 1
  }
  return out
}

function header(map: HeaderMap, rest: readonly string[]): PropertyValue | undefined {
  if (rest.length === 0) return serializePairs(map.flat)
  return map.get(rest.join('.').toLowerCase())
}

/** `request.size` / `response.size`: the declared content-length, when it is a plain number. */
function contentLength(map: HeaderMap): PropertyValue | undefined {
  const cl = map.get('content-length')
  return cl !== undefined && /^\d+$/.test(cl) ? int64(Number(cl)) : undefined
}

function splitHostPort(addr: string | undefined): { address: string; port: number } | undefined {
  if (!addr) return undefined
  const i = addr.lastIndexOf(':')
  if (i < 0 || addr.endsWith(']')) return { address: addr, port: 0 }
  const port = Number(addr.slice(i + 1))
  return { address: addr, port: Number.isInteger(port) ? port : 0 }
}

function hostPort(address: string, port: number): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]:${port}` : `${address}:${port}`
}

/** Resolves `path`; undefined when the property does not exist (proxy-wasm NotFound). */
export function getProperty(path: readonly string[], ctx: PropertyContext): PropertyValue | undefined {
  if (path.length === 0) return undefined
  const custom = ctx.custom?.get(path.join('.'))
  if (custom) return custom
  const [head, second, ...rest] = path as [string, string | undefined, ...string[]]
  const s = ctx.stream
  const info = s?.info
  switch (head) {
    case 'plugin_name':
      return path.length === 1 ? ctx.pluginName : undefined
    case 'plugin_root_id':
    case 'plugin_vm_id':
      return path.length === 1 ? (ctx.vmId ?? ctx.pluginName) : undefined
    case 'route_name':
      return path.length === 1 ? info?.routeName : undefined
    case 'cluster_name':
      return path.length === 1 ? info?.clusterName : undefined
    case 'xds':
      if (second === 'route_name') return info?.routeName
      if (second === 'cluster_name') return info?.clusterName
      return undefined
    case 'omnirelay':
      switch (second) {
        case 'route':
          return info?.routeName
        case 'cluster':
          return info?.clusterName
        case 'epoch':
          return info ? int64(info.epoch) : ctx.epoch === undefined ? undefined : int64(ctx.epoch)
        case 'peer_identity':
          return info?.tls?.peerIdentity
        case 'request_id':
          return info?.requestId
        case 'filter_name':
          return ctx.pluginName
        case 'filter_version':
          return ctx.filterVersion
      }
      return undefined
  }
  if (!s || !info) return undefined
  switch (head) {
    case 'request': {
      const h = s.requestHeaders
      switch (second) {
        case 'path':
          return h.get(':path')
        case 'url_path': {
          const p = h.get(':path')
          if (p === undefined) return undefined
          const q = p.indexOf('?')
          return q < 0 ? p : p.slice(0, q)
        }
        case 'query': {
          const p = h.get(':path')
          if (p === undefined) return undefined
          const q = p.indexOf('?')
          return q < 0 ? '' : p.slice(q + 1)
        }
        case 'host':
          return h.get(':authority') ?? h.get('host')
        case 'scheme':
          return h.get(':scheme') ?? info.scheme
        case 'method':
          return h.get(':method')
        case 'headers':
          return header(h, rest)
        case 'trailers':
          return header(s.requestTrailers, rest)
        case 'referer':
          return h.get('referer')
        case 'useragent':
          return h.get('user-agent')
        case 'id':
          return h.get('x-request-id') ?? info.requestId
        case 'protocol':
          return info.protocol
        case 'time':
          return int64(BigInt(Math.trunc(info.startTime)) * 1_000_000n)
        case 'duration':
          return int64(BigInt(Math.trunc((performance.now() - info.startMonotonic) * 1e6)))
        case 'size':
          return contentLength(h)
        case 'total_size':
          return int64(info.bytesReceived)
      }
      return undefined
    }
    case 'response': {
      const h = s.responseHeaders
      switch (second) {
        case 'code': {
          const st = h.get(':status')
          const code = info.responseCode || (st ? Number(st) : 0)
          return code ? int64(code) : undefined
        }
        case 'code_details':
          return info.localReplyDetails ?? (info.responseCode ? 'via_upstream' : undefined)
        case 'flags':
          return int64(0)
        case 'headers':
          return header(h, rest)
        case 'trailers':
          return header(s.responseTrailers, rest)
        case 'size':
          return contentLength(h)
        case 'total_size':
          return int64(info.bytesSent)
      }
      return undefined
    }
    case 'source':
      if (second === 'address') return hostPort(info.downstreamRemoteAddress, info.downstreamRemotePort)
      if (second === 'port') return int64(info.downstreamRemotePort)
      return undefined
    case 'destination':
      if (second === 'address') return hostPort(info.downstreamLocalAddress, info.downstreamLocalPort)
      if (second === 'port') return int64(info.downstreamLocalPort)
      return undefined
    case 'upstream': {
      const up = splitHostPort(info.upstreamAddress)
      if (!up) return undefined
      if (second === 'address') return up.address
      if (second === 'port') return int64(up.port)
      return undefined
    }
    case 'connection': {
      const tls = info.tls
      switch (second) {
        case 'mtls':
          return bool(!!tls?.peerCertificatePresented)
        case 'tls_version':
          return tls?.version
        case 'requested_server_name':
          return tls?.sni ?? ''
        case 'uri_san_peer_certificate':
          return tls?.peerIdentity
        case 'id':
          return undefined
      }
      return undefined
    }
  }
  return undefined
}

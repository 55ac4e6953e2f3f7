/**
 * Which request trailer fields may go upstream. Fields whose meaning is needed before the
 * content (framing, routing, authentication, request modifiers, content format) must not be
 * sent or honoured as trailers (RFC 9110 §6.5.1); the list is Go net/http's `badTrailer`
 * plus the connection-scoped fields HTTP/2 forbids anywhere (RFC 9113 §8.2.2).
 */
import { validateHeaderName, validateHeaderValue } from 'node:http'

const FORBIDDEN = new Set([
  'authorization',
  'cache-control',
  'connection',
  'content-encoding',
  'content-length',
  'content-range',
  'content-type',
  'expect',
  'host',
  'http2-settings',
  'keep-alive',
  'max-forwards',
  'pragma',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'range',
  'realm',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'www-authenticate',
])

/** Whether a lower-case field name may travel in a request trailer section. */
export function isForwardableTrailer(name: string): boolean {
  return name.length > 0 && name.charCodeAt(0) !== 58 /* ':' */ && !FORBIDDEN.has(name)
}

/**
 * The trailer fields to send upstream, as `[name, value]` pairs in order: forbidden fields,
 * pseudo-headers and fields node would refuse to write (bad name or value, e.g. from a
 * filter) are left out, so untrusted trailers can never make the send throw.
 *
 * @example
 * forwardableTrailers(['x-checksum', 'abc', 'content-length', '5']) // => [['x-checksum', 'abc']]
 */
export function forwardableTrailers(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = []
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = String(flat[i]).toLowerCase()
    const value = String(flat[i + 1])
    if (!isForwardableTrailer(name)) continue
    try {
      validateHeaderName(name)
      validateHeaderValue(name, value)
    } catch {
      continue
    }
    out.push([name, value])
  }
  return out
}

/** The HTTP/2 form (`stream.sendTrailers`): one key per name, repeated names as arrays. */
export function trailersObject(pairs: readonly (readonly [string, string])[]): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = Object.create(null)
  for (const [k, v] of pairs) {
    const prev = o[k]
    if (prev === undefined) o[k] = v
    else if (Array.isArray(prev)) prev.push(v)
    else o[k] = [prev, v]
  }
  return o
}

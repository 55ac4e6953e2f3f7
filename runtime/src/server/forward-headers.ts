/**
 * Header rules for forwarding (RFC 9110 §7.6): hop-by-hop headers never cross the proxy,
 * `x-forwarded-for`/`-proto`, `x-request-id` and `via` are added on the way in, `via` on
 * the way out. Works on flat arrays in one pass; no header objects.
 */
import { randomBytes } from 'node:crypto'

/** Connection-scoped headers; `te` is handled apart (`te: trailers` must reach gRPC upstreams). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'trailer',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
])

export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName)
}

const SAFE_REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/

/**
 * Request ids: a random 96-bit prefix per process plus a counter. Unique across processes
 * and restarts like a UUID, but without drawing entropy per request (randomUUID showed up
 * at ~1 % of CPU per request). Ids are correlation handles, not secrets.
 */
const ID_PREFIX = randomBytes(12).toString('hex')
let idCounter = 0

export function newRequestId(): string {
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER
  return `${ID_PREFIX}-${idCounter.toString(16)}`
}

/** What the single pass over the downstream headers learned. */
export interface RequestFacts {
  /** Lower-case wire headers to send upstream (no pseudo-headers, no hop-by-hop, no host). */
  headers: string[]
  authority: string
  requestId: string
  /** Whether a body follows (content-length > 0 or chunked). HTTP/2 decides from the stream instead. */
  hasBody: boolean
  /** `Connection: upgrade` + `Upgrade: websocket` style request. */
  upgrade: string | undefined
  /** The `Trailer` header (fields announced to follow the body, RFC 9110 §6.6.2); not in `headers`. */
  trailer: string | undefined
}

export interface ForwardOptions {
  /** Append the client address to `x-forwarded-for` (edge and sidecar-inbound). */
  appendXff: boolean
  /** Overwrite `x-forwarded-proto` with the downstream scheme (edge only; sidecars keep what came). */
  setProto: boolean
  /** `via` token, e.g. `1.1 omnirelay`. */
  via: string
}

/**
 * One pass over node's `rawHeaders` (HTTP/1 names in any case; HTTP/2 with pseudo-headers).
 * @param keepUpgrade keep `connection`/`upgrade` (WebSocket tunnelling needs them upstream)
 */
export function forwardRequestHeaders(
  raw: readonly string[],
  remote: string,
  scheme: string,
  opts: ForwardOptions,
  keepUpgrade = false,
): RequestFacts {
  const out: string[] = []
  let authority = ''
  let xff: string | undefined
  let requestId: string | undefined
  let proto: string | undefined
  let via: string | undefined
  let hasBody = false
  let connection: string | undefined
  let upgrade: string | undefined
  let trailer: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':authority') authority = value
      continue
    }
    switch (name) {
      case 'host':
        if (!authority) authority = value
        continue
      case 'content-length':
        if (value !== '0') hasBody = true
        break
      case 'transfer-encoding':
        hasBody = true
        continue
      case 'x-forwarded-for':
        xff = xff === undefined ? value : `${xff}, ${value}`
        continue
      case 'x-forwarded-proto':
        proto = value
        continue
      case 'x-request-id':
        requestId = value
        continue
      case 'via':
        via = via === undefined ? value : `${via}, ${value}`
        continue
      case 'expect':
        // The downstream server already answered "100 Continue"; undici refuses the header.
        continue
      case 'te':
        // Only "trailers" may cross (HTTP/2 forbids anything else; gRPC needs it).
        if (value.toLowerCase().includes('trailers')) out.push('te', 'trailers')
        continue
      case 'connection':
        connection = value
        if (keepUpgrade) out.push(name, value)
        continue
      case 'upgrade':
        upgrade = value
        if (keepUpgrade) out.push(name, value)
        continue
      case 'trailer':
        // Forwarded only by an upstream path that can send the trailers (exchange.ts decides).
        trailer = trailer === undefined ? value : `${trailer}, ${value}`
        continue
      default:
        if (HOP_BY_HOP.has(name)) continue
    }
    out.push(name, value)
  }
  if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close') stripConnectionTokens(out, connection, keepUpgrade)
  if (opts.appendXff) out.push('x-forwarded-for', xff === undefined ? remote : `${xff}, ${remote}`)
  else if (xff !== undefined) out.push('x-forwarded-for', xff)
  if (opts.setProto || proto === undefined) out.push('x-forwarded-proto', opts.setProto ? scheme : (proto ?? scheme))
  else out.push('x-forwarded-proto', proto)
  if (requestId === undefined || !SAFE_REQUEST_ID.test(requestId)) requestId = newRequestId()
  out.push('x-request-id', requestId)
  out.push('via', via === undefined ? opts.via : `${via}, ${opts.via}`)
  return { headers: out, authority, requestId, hasBody, upgrade: connection && /\bupgrade\b/i.test(connection) ? upgrade : undefined, trailer }
}

/**
 * Removes hop-by-hop headers and `expect` from lower-case flat headers, in place: headers a
 * filter wrote are forwarded under the same rule as the downstream's (the proxy already
 * answered any `100-continue`, and undici refuses both kinds).
 *
 * @example
 * stripHopByHop(['connection', 'close', 'x-a', '1']) // => ['x-a', '1']
 */
export function stripHopByHop(flat: string[]): string[] {
  let j = 0
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!
    if (HOP_BY_HOP.has(name) || name === 'expect') continue
    if (j !== i) {
      flat[j] = name
      flat[j + 1] = flat[i + 1]!
    }
    j += 2
  }
  flat.length = j
  return flat
}

/** Headers named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1). */
function stripConnectionTokens(out: string[], connection: string, keepUpgrade: boolean): void {
  for (const token of connection.toLowerCase().split(',')) {
    const t = token.trim()
    if (!t || t === 'close' || t === 'keep-alive' || (keepUpgrade && t === 'upgrade')) continue
    for (let i = 0; i < out.length; ) {
      if (out[i] === t) out.splice(i, 2)
      else i += 2
    }
  }
}

/** Upstream response headers (lower-case flat, from undici) -> headers for downstream, plus `via`. */
export function forwardResponseHeaders(flat: readonly string[], via: string): string[] {
  const out: string[] = []
  let prevVia: string | undefined
  let connection: string | undefined
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!
    if (HOP_BY_HOP.has(name)) {
      if (name === 'connection') connection = flat[i + 1]
      continue
    }
    if (name === 'via') {
      prevVia = prevVia === undefined ? flat[i + 1] : `${prevVia}, ${flat[i + 1]}`
      continue
    }
    if (name === 'te' || name.charCodeAt(0) === 58) continue
    out.push(name, flat[i + 1]!)
  }
  if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close') stripConnectionTokens(out, connection, false)
  out.push('via', prevVia === undefined ? via : `${prevVia}, ${via}`)
  return out
}

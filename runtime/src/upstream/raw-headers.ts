/**
 * Converts what undici hands a dispatch handler into the flat `[name, value, ...]` string
 * arrays of the upstream contract. HTTP/1.1 gives raw `Buffer` pairs (names in the server's
 * case); HTTP/2 trailers arrive as an object (names already lower-case, values maybe arrays).
 */
import { createRequire } from 'node:module'

type NameToString = (b: Buffer) => string
const require = createRequire(import.meta.url)

// undici's own lookup returns interned lower-case strings for well-known header names
// without allocating; it is internal, so fall back to a plain conversion if it moves.
let knownName: NameToString | undefined
try {
  const util = require('undici/lib/core/util.js') as { headerNameToString?: NameToString }
  if (typeof util.headerNameToString === 'function') knownName = util.headerNameToString
} catch {
  knownName = undefined
}

function nameOf(b: Buffer | string): string {
  if (typeof b === 'string') return b.toLowerCase()
  return knownName !== undefined ? knownName(b) : b.toString('latin1').toLowerCase()
}

/** Flat lower-case `[name, value, ...]` from undici raw headers. */
export function rawToFlat(raw: ReadonlyArray<Buffer | string> | null | undefined): string[] {
  if (raw == null || raw.length === 0) return []
  const n = raw.length & ~1
  const out = new Array<string>(n)
  for (let i = 0; i < n; i += 2) {
    out[i] = nameOf(raw[i]!)
    const v = raw[i + 1]!
    // latin1 keeps every byte as is, the same way node's http server exposes rawHeaders.
    out[i + 1] = typeof v === 'string' ? v : v.toString('latin1')
  }
  return out
}

/** Flat trailers from either form undici uses (raw pairs on HTTP/1.1, an object on HTTP/2). */
export function trailersToFlat(t: unknown): string[] {
  if (t == null) return []
  if (Array.isArray(t)) return rawToFlat(t as Array<Buffer | string>)
  const out: string[] = []
  const o = t as Record<string, string | string[] | undefined>
  for (const k in o) {
    const v = o[k]
    if (v === undefined) continue
    if (Array.isArray(v)) for (const x of v) out.push(k.toLowerCase(), String(x))
    else out.push(k.toLowerCase(), String(v))
  }
  return out
}

/**
 * Per-request choice between two versions of one filter slot: deterministic from a hash of
 * a sticky key (a configured header, else a configured cookie, else the request id), so the
 * same user keeps the same version while the weight stays the same, and raising the weight
 * only moves users from A to B (bucket < weight => B), never back.
 *
 * A pin header (`x-omnirelay-pin: waf=2.0.0, auth=1.1.0`) forces a version for testing.
 *
 * Hot path: `choose()` scans header values in place (indexOf/startsWith/charCodeAt) and
 * hashes a range of an existing string: no substring, no split, no per-request object.
 */
import type { HeaderMap } from '../pipeline/header-map.ts'
import { fnv1a } from './hash.ts'

/** Index of the chosen variant: 0 = A (stable), 1 = B (canary). */
export type Variant = 0 | 1

/** How a request header or cookie says which version a request gets. */
export const DEFAULT_PIN_HEADER = 'x-omnirelay-pin'

export interface SplitSpec {
  /** Slot name as written in pin headers (the filter's name in its chain). */
  slot: string
  /** Versions of A and B, as written in pin headers. */
  versions: readonly [string, string]
  /** Share of B in basis points (0..10000). */
  weightB: number
  /** Request header whose value is the sticky key (lower-case). */
  stickyHeader?: string
  /** Cookie whose value is the sticky key (used when the header is absent). */
  stickyCookie?: string
  /** Header that pins a version; default `x-omnirelay-pin`; '' disables pinning. */
  pinHeader?: string
  /** Salt mixed into the hash so different rollouts do not pick the same users. */
  salt?: string
}

/** Thrown by `new SplitChooser` on a bad spec (config time only). */
export class SplitSpecError extends Error {
  readonly code = 'rollout_split_invalid'
  constructor(message: string) {
    super(message)
    this.name = 'SplitSpecError'
  }
}

/**
 * @example
 * const c = new SplitChooser({ slot: 'waf', versions: ['1.0.0', '2.0.0'], weightB: 500, stickyCookie: 'uid' })
 * c.choose(stream.requestHeaders, stream.info.requestId) // => 0 for ~95 % of users, 1 for ~5 %
 */
export class SplitChooser {
  readonly slot: string
  readonly versions: readonly [string, string]
  readonly weightB: number
  readonly #stickyHeader: string | undefined
  readonly #cookiePrefix: string | undefined
  readonly #pinHeader: string
  readonly #pinPrefix: string
  readonly #salt: number

  constructor(spec: SplitSpec) {
    if (!Number.isInteger(spec.weightB) || spec.weightB < 0 || spec.weightB > 10_000) throw new SplitSpecError(`weightB must be an integer 0..10000, got ${spec.weightB}`)
    if (!spec.slot || /[=,;\s]/.test(spec.slot)) throw new SplitSpecError(`bad slot name "${spec.slot}"`)
    for (const v of spec.versions) if (!v || /[=,;\s]/.test(v)) throw new SplitSpecError(`bad version "${v}"`)
    if (spec.versions[0] === spec.versions[1]) throw new SplitSpecError('versions A and B must differ')
    if (spec.stickyCookie !== undefined && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(spec.stickyCookie)) throw new SplitSpecError(`bad cookie name "${spec.stickyCookie}"`)
    this.slot = spec.slot
    this.versions = spec.versions
    this.weightB = spec.weightB
    this.#stickyHeader = spec.stickyHeader?.toLowerCase()
    this.#cookiePrefix = spec.stickyCookie === undefined ? undefined : `${spec.stickyCookie}=`
    this.#pinHeader = (spec.pinHeader ?? DEFAULT_PIN_HEADER).toLowerCase()
    this.#pinPrefix = `${spec.slot}=`
    this.#salt = spec.salt ? fnv1a(spec.salt) : 0
  }

  /** Picks the variant of one request. Pure: same headers and id, same answer. */
  choose(headers: HeaderMap, requestId: string): Variant {
    if (this.#pinHeader !== '') {
      const pin = headers.get(this.#pinHeader)
      if (pin !== undefined) {
        const p = this.#pinned(pin)
        if (p !== -1) return p
      }
    }
    if (this.weightB === 0) return 0
    if (this.weightB === 10_000) return 1
    if (this.#stickyHeader !== undefined) {
      const v = headers.get(this.#stickyHeader)
      if (v !== undefined && v.length > 0) return this.#bucket(v, 0, v.length)
    }
    if (this.#cookiePrefix !== undefined) {
      const r = this.#cookie(headers)
      if (r !== -1) return r
    }
    return this.#bucket(requestId, 0, requestId.length)
  }

  #bucket(s: string, start: number, end: number): Variant {
    const h = (fnv1a(s, start, end) ^ this.#salt) >>> 0
    return h % 10_000 < this.weightB ? 1 : 0
  }

  // `slot=version` anywhere in a comma-separated list; an unknown version pins nothing.
  #pinned(value: string): Variant | -1 {
    const prefix = this.#pinPrefix
    let at = value.indexOf(prefix)
    while (at !== -1) {
      if (at === 0 || isSep(value.charCodeAt(at - 1))) {
        const from = at + prefix.length
        for (let v = 0; v < 2; v++) {
          const ver = this.versions[v]!
          if (value.startsWith(ver, from)) {
            const end = from + ver.length
            if (end === value.length || isSep(value.charCodeAt(end))) return v as Variant
          }
        }
        return -1
      }
      at = value.indexOf(prefix, at + 1)
    }
    return -1
  }

  // Hashes the cookie's value in place: every `cookie` header, `; `-separated pairs.
  #cookie(headers: HeaderMap): Variant | -1 {
    const prefix = this.#cookiePrefix!
    const f = headers.flat
    for (let i = 0; i < f.length; i += 2) {
      if (f[i] !== 'cookie') continue
      const c = f[i + 1]!
      let at = c.indexOf(prefix)
      while (at !== -1) {
        if (at === 0 || c.charCodeAt(at - 1) === 59 /* ; */ || c.charCodeAt(at - 1) === 32 /* space */) {
          const from = at + prefix.length
          let end = c.indexOf(';', from)
          if (end === -1) end = c.length
          if (end > from) return this.#bucket(c, from, end)
        }
        at = c.indexOf(prefix, at + 1)
      }
    }
    return -1
  }
}

function isSep(ch: number): boolean {
  return ch === 44 /* , */ || ch === 32 /* space */ || ch === 59 /* ; */ || ch === 9 /* tab */
}

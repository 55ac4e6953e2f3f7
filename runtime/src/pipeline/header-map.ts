/**
 * An ordered, multi-valued HTTP header map with lower-case names, stored as one flat array
 * `[name0, value0, name1, value1, ...]`.
 *
 * Why flat: it is what node's `rawHeaders` gives us, what undici accepts as request headers,
 * and what the proxy-wasm `get_header_map_pairs` serialization walks, so the hot path copies
 * no per-header objects. Header maps are small; a linear scan beats hashing at this size.
 *
 * Pseudo-headers (`:method`, `:path`, `:authority`, `:scheme` on requests, `:status` on
 * responses) live in the same map, as proxy-wasm filters expect; `toWire()` leaves them out.
 *
 * @example
 * const h = HeaderMap.fromRaw(req.rawHeaders)
 * h.set('x-request-id', id)
 * h.get('host') // => 'example.com'
 */
export class HeaderMap {
  #flat: string[]

  /** Takes ownership of `flat` (names must already be lower-case). */
  constructor(flat: string[] = []) {
    this.#flat = flat
  }

  /** From node's `rawHeaders` (names in any case). */
  static fromRaw(raw: readonly string[]): HeaderMap {
    const flat = new Array<string>(raw.length)
    for (let i = 0; i < raw.length; i += 2) {
      flat[i] = lowerCase(raw[i]!)
      flat[i + 1] = raw[i + 1]!
    }
    return new HeaderMap(flat)
  }

  /** From `[name, value]` pairs (names in any case). */
  static fromPairs(pairs: Iterable<readonly [string, string]>): HeaderMap {
    const flat: string[] = []
    for (const [k, v] of pairs) flat.push(lowerCase(k), v)
    return new HeaderMap(flat)
  }

  /** Number of entries (a name with two values counts twice). */
  get size(): number {
    return this.#flat.length >>> 1
  }

  /** The first value of `name`, or undefined. `name` must be lower-case. */
  get(name: string): string | undefined {
    const f = this.#flat
    for (let i = 0; i < f.length; i += 2) if (f[i] === name) return f[i + 1]
    return undefined
  }

  /** Every value of `name`, in order. */
  getAll(name: string): string[] {
    const out: string[] = []
    const f = this.#flat
    for (let i = 0; i < f.length; i += 2) if (f[i] === name) out.push(f[i + 1]!)
    return out
  }

  has(name: string): boolean {
    return this.get(name) !== undefined
  }

  /** Appends a value, keeping existing ones (proxy-wasm `add_header_map_value`). */
  add(name: string, value: string): void {
    this.#flat.push(lowerCase(name), value)
  }

  /** Replaces every value of `name` with one value (proxy-wasm `replace_header_map_value`). */
  set(name: string, value: string): void {
    this.setLowerCase(lowerCase(name), value)
  }

  /** Removes every value of `name`; returns whether any was there. */
  remove(name: string): boolean {
    return this.removeLowerCase(lowerCase(name))
  }

  /**
   * `add` for a name known to be lower-case (a host that checked it on the bytes, as the Wasm
   * host does): skips the per-character check.
   */
  addLowerCase(name: string, value: string): void {
    this.#flat.push(name, value)
  }

  /** `set` for a name known to be lower-case. */
  setLowerCase(name: string, value: string): void {
    const f = this.#flat
    let found = false
    for (let i = 0; i < f.length; ) {
      if (f[i] === name) {
        if (!found) {
          f[i + 1] = value
          found = true
          i += 2
        } else f.splice(i, 2)
      } else i += 2
    }
    if (!found) f.push(name, value)
  }

  /** `remove` for a name known to be lower-case. */
  removeLowerCase(name: string): boolean {
    const f = this.#flat
    let removed = false
    for (let i = 0; i < f.length; ) {
      if (f[i] === name) {
        f.splice(i, 2)
        removed = true
      } else i += 2
    }
    return removed
  }

  /** Replaces the whole map (proxy-wasm `set_header_map_pairs`). */
  replaceAll(flat: string[]): void {
    this.#flat = flat
  }

  /** The backing flat array, pseudo-headers included. Do not keep it across a `replaceAll`. */
  get flat(): readonly string[] {
    return this.#flat
  }

  /** `[name, value]` pairs in order. */
  *entries(): IterableIterator<[string, string]> {
    const f = this.#flat
    for (let i = 0; i < f.length; i += 2) yield [f[i]!, f[i + 1]!]
  }

  /** A flat array without pseudo-headers, ready for undici or `writeHead`. */
  toWire(): string[] {
    const f = this.#flat
    const out: string[] = []
    for (let i = 0; i < f.length; i += 2) if (f[i]!.charCodeAt(0) !== 58 /* ':' */) out.push(f[i]!, f[i + 1]!)
    return out
  }
}

/**
 * `name` lower-cased, or `name` itself when it has nothing to lower-case. Names from filters
 * and from most clients are lower-case, and `toLowerCase` is V8's Intl builtin, which builds
 * a new string each time (~1.9k instructions a request through the bench's five-filter chain
 * under callgrind). Hosts that checked a name on its bytes skip even this scan
 * (`*LowerCase` methods).
 */
function lowerCase(name: string): string {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if ((c >= 65 && c <= 90) || c > 127) return name.toLowerCase()
  }
  return name
}

/**
 * A direct-mapped cache of strings decoded from short byte runs of a module's memory.
 *
 * A filter hands the host the same header names and values (from its config, the SDK's own)
 * on every request: a hit costs a hash and a compare of a few bytes instead of a decode, and
 * hands back the same string (no garbage, its hash already computed for the lookups it goes
 * on to). A collision simply replaces the slot.
 *
 * @example
 * const cache = new ShortStringCache()
 * let s = cache.get(u8, ptr, len)
 * if (s === undefined) cache.put(u8, ptr, len, (s = decode(ptr, len)))
 */

/** Byte runs up to this long are cached. */
export const CACHED_STRING_BYTES = 32
/** Slots (a power of two). */
const SLOTS = 64

export class ShortStringCache {
  readonly #keys: (Uint8Array | undefined)[] = new Array(SLOTS).fill(undefined)
  readonly #values: string[] = new Array(SLOTS).fill('')
  /** The slot of the last `get`, where `put` stores. */
  #slot = 0

  /** The string cached for u8[ptr, ptr+len), or undefined. `len` <= CACHED_STRING_BYTES. */
  get(u8: Uint8Array, ptr: number, len: number): string | undefined {
    let h = len
    for (let i = 0; i < len; i++) h = (Math.imul(h, 31) + u8[ptr + i]!) | 0
    const slot = (this.#slot = (h ^ (h >>> 16)) & (SLOTS - 1))
    const key = this.#keys[slot]
    if (key === undefined || key.length !== len) return undefined
    let i = 0
    while (i < len && key[i] === u8[ptr + i]) i++
    return i === len ? this.#values[slot] : undefined
  }

  /** Caches `s` for the bytes the last `get` missed (same u8, ptr and len). */
  put(u8: Uint8Array, ptr: number, len: number, s: string): void {
    this.#keys[this.#slot] = u8.slice(ptr, ptr + len)
    this.#values[this.#slot] = s
  }
}

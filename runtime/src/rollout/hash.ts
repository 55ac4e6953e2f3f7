/**
 * FNV-1a (32-bit) over UTF-16 code units of a string range. Chosen for the split because it
 * needs no allocation (no Buffer, no substring) and spreads short ids well enough for
 * basis-point buckets; it is not a security hash — a client that can choose its sticky key
 * can choose its variant, which is the point of stickiness anyway.
 *
 * @example
 * bucketOf('req-42', 0, 6) // => 0..9999, always the same for 'req-42'
 */
export function fnv1a(s: string, start = 0, end = s.length): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  // A final avalanche (murmur3 fmix32): FNV alone leaves the low bits of near-identical
  // keys ("req-1", "req-2") correlated, which skews `% 10000` for sequential ids.
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The split bucket (0..9999, basis points) of a key range. */
export function bucketOf(s: string, start = 0, end = s.length): number {
  return fnv1a(s, start, end) % 10_000
}

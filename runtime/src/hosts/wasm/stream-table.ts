/**
 * The live HTTP contexts of one Wasm instance, found by context id.
 *
 * Why not a Map: every request inserts one context and deletes it again, and V8's ordered
 * hash tables do not reuse deleted slots, so a Map with one live entry rehashes (allocates a
 * new table) every few requests: ~0.35 µs per filter per request, measured with five no-op
 * filters. Here each binding keeps its index: add and remove are O(1) and allocate nothing.
 * Lookup by id scans, but only `proxy_set_effective_context` asks, and few contexts of one
 * instance are live at once.
 *
 * @example
 * const t = new StreamTable()
 * t.add(binding)          // binding.slot = its index
 * t.get(binding.contextId) // => binding
 * t.remove(binding)
 */
export interface Slotted {
  readonly contextId: number
  /** Index in the table holding it; -1 when in none. Owned by the table. */
  slot: number
}

export class StreamTable<B extends Slotted> {
  readonly #items: B[] = []

  get size(): number {
    return this.#items.length
  }

  add(b: B): void {
    b.slot = this.#items.length
    this.#items.push(b)
  }

  /** Removes `b` if it is here (no-op otherwise): the last entry takes its index. */
  remove(b: B): void {
    const items = this.#items
    const i = b.slot
    if (i < 0 || items[i] !== b) return
    const last = items.pop()!
    if (last !== b) {
      items[i] = last
      last.slot = i
    }
    b.slot = -1
  }

  get(contextId: number): B | undefined {
    const items = this.#items
    for (let i = 0; i < items.length; i++) if (items[i]!.contextId === contextId) return items[i]
    return undefined
  }

  clear(): void {
    for (const b of this.#items) b.slot = -1
    this.#items.length = 0
  }
}

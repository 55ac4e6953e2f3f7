import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { StreamTable } from './stream-table.ts'

describe('StreamTable', () => {
  it('agrees with a Map on any sequence of adds and removes', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 15 })), { maxLength: 200 }), (ops) => {
        const bindings = Array.from({ length: 16 }, (_, i) => ({ contextId: 100 + i, slot: -1 }))
        const t = new StreamTable<(typeof bindings)[number]>()
        const m = new Map<number, (typeof bindings)[number]>()
        for (const [add, i] of ops) {
          const b = bindings[i]!
          if (add && !m.has(b.contextId)) {
            t.add(b)
            m.set(b.contextId, b)
          } else if (!add) {
            t.remove(b)
            m.delete(b.contextId)
          }
          expect(t.size).toBe(m.size)
        }
        for (const b of bindings) {
          expect(t.get(b.contextId)).toBe(m.get(b.contextId))
          expect(b.slot >= 0).toBe(m.has(b.contextId))
        }
        t.clear()
        expect(t.size).toBe(0)
        expect(bindings.every((b) => b.slot === -1 && t.get(b.contextId) === undefined)).toBe(true)
      }),
    )
  })
})

import { describe, expect, it } from 'vitest'
import { GuestMemory } from './guest-memory.ts'

describe('GuestMemory views', () => {
  it('reads and writes the grown memory after memory.grow detaches the old buffer', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 })
    const m = new GuestMemory(memory)
    m.setU32(16, 7)
    expect(m.ok(65536, 4)).toBe(false)
    memory.grow(1)
    expect(m.byteLength).toBe(2 * 65536)
    expect(m.ok(65536, 4)).toBe(true)
    m.setU32(65536, 0xdeadbeef)
    expect(new DataView(memory.buffer).getUint32(65536, true)).toBe(0xdeadbeef)
    expect(m.u32(16)).toBe(7)
  })

  it('setU64 stores values modulo 2^64', () => {
    const memory = new WebAssembly.Memory({ initial: 1 })
    const m = new GuestMemory(memory)
    m.setU64(8, -1n)
    expect(new DataView(memory.buffer).getBigUint64(8, true)).toBe(2n ** 64n - 1n)
    m.setU64(8, 2n ** 64n + 5n)
    expect(new DataView(memory.buffer).getBigUint64(8, true)).toBe(5n)
  })
})

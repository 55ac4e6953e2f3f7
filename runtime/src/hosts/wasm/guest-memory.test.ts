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

  it('string() decodes exactly as a fresh decode, whatever the cache holds (collisions, rewrites, invalid UTF-8)', () => {
    const memory = new WebAssembly.Memory({ initial: 1 })
    const m = new GuestMemory(memory)
    const u8 = new Uint8Array(memory.buffer)
    let seed = 42
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed % n
    }
    // A small alphabet (with bytes >= 0x80) makes equal lengths, hash collisions and
    // slot reuse common; rewriting the same offsets checks a hit is never stale.
    const alphabet = [0x61, 0x62, 0x2d, 0x3a, 0xc3, 0xa9, 0xff, 0x80]
    for (let n = 0; n < 20_000; n++) {
      const ptr = 64 * rnd(8)
      const len = rnd(40)
      for (let i = 0; i < len; i++) u8[ptr + i] = alphabet[rnd(alphabet.length)]!
      expect(m.string(ptr, len)).toBe(Buffer.from(u8.subarray(ptr, ptr + len)).toString('utf8'))
    }
  })

  it('headerName() and headerValue() agree with the header syntax, whatever the caches hold', () => {
    const memory = new WebAssembly.Memory({ initial: 1 })
    const m = new GuestMemory(memory)
    const u8 = new Uint8Array(memory.buffer)
    const NAME = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/
    let seed = 7
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed % n
    }
    // Letters of both cases, ':' anywhere, separators, controls and non-ASCII bytes.
    const alphabet = [0x61, 0x41, 0x2d, 0x3a, 0x20, 0x09, 0x0d, 0x0a, 0x00, 0x7e, 0x7f, 0xc3, 0xa9, 0x5a, 0x31]
    for (let n = 0; n < 20_000; n++) {
      const ptr = 64 * rnd(8)
      const len = rnd(40)
      for (let i = 0; i < len; i++) u8[ptr + i] = alphabet[rnd(alphabet.length)]!
      const text = Buffer.from(u8.subarray(ptr, ptr + len)).toString('utf8')
      const lowered = text.toLowerCase()
      expect(m.headerName(ptr, len)).toBe(NAME.test(lowered) ? lowered : undefined)
      const bytes = Buffer.from(u8.subarray(ptr, ptr + len))
      expect(m.headerValue(ptr, len)).toBe(/[\x00-\x08\x0a-\x1f\x7f]/.test(bytes.toString('latin1')) ? undefined : bytes.toString('latin1'))
    }
  })
})

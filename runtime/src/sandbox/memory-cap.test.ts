import { describe, expect, it } from 'vitest'
import { wat } from '../../test/wasm/wat.ts'
import { capMemory, MemoryCapError, pagesFor } from './memory-cap.ts'
import { ModuleCache } from './module-cache.ts'
import { FuelMeter, fuelImports, START_EXPORT } from './fuel.ts'

const grower = `(module (memory (export "memory") 1)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`

describe('capMemory', () => {
  it('caps a defined memory: growth past the cap fails', async () => {
    const capped = capMemory(await wat(grower), 4)
    expect(capped.memories).toEqual([{ imported: false, initial: 1, maximum: 4 }])
    const inst = new WebAssembly.Instance(new WebAssembly.Module(capped.bytes))
    const grow = inst.exports.grow as (n: number) => number
    expect(grow(3)).toBe(1)
    expect(grow(1)).toBe(-1)
    expect((inst.exports.memory as WebAssembly.Memory).buffer.byteLength).toBe(4 * 65536)
  })

  it('keeps a smaller declared maximum', async () => {
    const capped = capMemory(await wat(`(module (memory 1 2))`), 100)
    expect(capped.memories[0]!.maximum).toBe(2)
  })

  it('caps an imported memory', async () => {
    const capped = capMemory(await wat(`(module (import "env" "memory" (memory 2)) (func (export "f")))`), 8)
    expect(capped.memories).toEqual([{ imported: true, module: 'env', name: 'memory', initial: 2, maximum: 8 }])
    const mem = new WebAssembly.Memory({ initial: 2, maximum: 8 })
    expect(() => new WebAssembly.Instance(new WebAssembly.Module(capped.bytes), { env: { memory: mem } })).not.toThrow()
    const tooBig = new WebAssembly.Memory({ initial: 2, maximum: 9 })
    expect(() => new WebAssembly.Instance(new WebAssembly.Module(capped.bytes), { env: { memory: tooBig } })).toThrow()
  })

  it('refuses a module whose initial memory exceeds the cap', async () => {
    expect(() => capMemory(new Uint8Array(0), 1)).toThrow()
    const big = await wat(`(module (memory 10))`)
    expect(() => capMemory(big, 4)).toThrow(MemoryCapError)
  })

  it('rounds bytes up to pages', () => {
    expect(pagesFor(1)).toBe(1)
    expect(pagesFor(65536)).toBe(1)
    expect(pagesFor(65537)).toBe(2)
    expect(pagesFor(2 ** 40)).toBe(65536)
  })
})

describe('ModuleCache', () => {
  it('instruments and compiles once per digest and options', async () => {
    const cache = new ModuleCache()
    const bytes = await wat(`(module (memory 1) (global $g (mut i32) (i32.const 0))
      (func $s (global.set $g (i32.const 5))) (start $s)
      (func (export "g") (result i32) (global.get $g)))`)
    const [a, b] = await Promise.all([cache.prepare(bytes, { fuel: true, maxPages: 2 }), cache.prepare(bytes, { fuel: true, maxPages: 2 })])
    expect(a.module).toBe(b.module)
    const c = await cache.prepare(bytes, { fuel: true, maxPages: 2 })
    expect(c.module).toBe(a.module)
    expect(c.prepareMs).toBe(0)
    expect(a.hasStart).toBe(true)
    expect(a.memories[0]!.maximum).toBe(2)
    const inst = new WebAssembly.Instance(a.module, fuelImports())
    new FuelMeter(inst.exports).set(100)
    ;(inst.exports[START_EXPORT] as () => void)()
    expect((inst.exports.g as () => number)()).toBe(5)
    const u = await cache.prepare(bytes, { fuel: false })
    expect(u.module).not.toBe(a.module)
    expect(u.hasStart).toBe(true)
    expect(cache.size).toBe(2)
  })

  it('keeps instrumented modules on disk for the next process', async () => {
    const { mkdtemp, readdir, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = await mkdtemp(join(tmpdir(), 'omnirelay-wasm-cache-'))
    try {
      const bytes = await wat(`(module (memory 1) (global $g (mut i32) (i32.const 0)) (func $s (global.set $g (i32.const 5))) (start $s)
        (func (export "g") (result i32) (global.get $g)))`)
      const a = await new ModuleCache({ diskDir: dir }).prepare(bytes, { fuel: true, snapshot: true })
      expect(await readdir(dir)).toHaveLength(1)
      const b = await new ModuleCache({ diskDir: dir }).prepare(bytes, { fuel: true, snapshot: true })
      expect(b.hasStart).toBe(a.hasStart)
      expect(b.mutableGlobals).toEqual(a.mutableGlobals)
      expect(b.exports).toEqual(a.exports)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('can be seeded with an instrumentation the caller already has', async () => {
    const { instrumentFuel } = await import('./fuel.ts')
    const bytes = await wat(`(module (memory 1) (func (export "f")))`)
    const r = await instrumentFuel(bytes)
    const cache = new ModuleCache()
    cache.seedInstrumented(bytes, { fuel: true }, { bytes: r.bytes, hasStart: false })
    const p = await cache.prepare(bytes, { fuel: true, maxPages: 2 })
    expect(p.exports.map((e) => e.name)).toContain('__omnirelay_fuel')
    expect(p.memories[0]!.maximum).toBe(2)
  })

  it('does not cache failures', async () => {
    const cache = new ModuleCache()
    await expect(cache.prepare(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 99]), { fuel: true })).rejects.toBeDefined()
    expect(cache.size).toBe(0)
  })
})

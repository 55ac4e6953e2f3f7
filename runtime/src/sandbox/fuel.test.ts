import { describe, expect, it } from 'vitest'
import { wat } from '../../test/wasm/wat.ts'
import { FUEL_EXPORT, FuelMeter, InstrumentError, START_EXPORT, fuelImports, instrumentFuel, isOutOfFuel } from './fuel.ts'

async function load(src: string, imports: WebAssembly.Imports = {}) {
  const { bytes, hasStart } = await instrumentFuel(await wat(src))
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { ...imports, ...fuelImports() })
  return { inst, meter: new FuelMeter(inst.exports), hasStart, exports: inst.exports as Record<string, any> }
}

function run(f: () => unknown): { error?: unknown; ms: number } {
  const t = performance.now()
  try {
    f()
    return { ms: performance.now() - t }
  } catch (error) {
    return { error, ms: performance.now() - t }
  }
}

describe('instrumentFuel', () => {
  it('stops while(true) in milliseconds', async () => {
    const { exports, meter } = await load(`(module (func (export "spin") (loop $l (br $l))))`)
    meter.set(10_000_000)
    const r = run(() => exports.spin())
    expect(isOutOfFuel(r.error)).toBe(true)
    expect(r.ms).toBeLessThan(200)
    expect(meter.remaining()).toBeLessThan(0)
  })

  it('stops loop-free recursion (fib) through the function-entry charge', async () => {
    const { exports, meter } = await load(`(module
      (func $fib (export "fib") (param i32) (result i32)
        (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
          (then (local.get 0))
          (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1))) (call $fib (i32.sub (local.get 0) (i32.const 2))))))))`)
    meter.set(1_000_000)
    const r = run(() => exports.fib(50))
    expect(isOutOfFuel(r.error)).toBe(true)
    expect(r.ms).toBeLessThan(200)
    meter.set(1_000_000)
    expect(exports.fib(10)).toBe(55)
  })

  it('is deterministic and proportional to work', async () => {
    const src = `(module (func (export "sum") (param $n i32) (result i32) (local $acc i32)
      (block $done (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
      (local.get $acc)))`
    const a = await load(src)
    const b = await load(src)
    a.meter.set(1e9)
    expect(a.exports.sum(100)).toBe(5050)
    const used100 = a.meter.used()
    b.meter.set(1e9)
    b.exports.sum(100)
    expect(b.meter.used()).toBe(used100)
    a.meter.set(1e9)
    a.exports.sum(200)
    expect(a.meter.used()).toBeGreaterThan(used100 * 1.9)
  })

  it('charges bulk memory operations by length, so a loop of them stops in milliseconds', async () => {
    // Each iteration fills a whole 64 KiB page: one instruction, 4096 units of fuel.
    const { exports, meter } = await load(`(module (memory 1)
      (func (export "grind") (param $n i32)
        (loop $l
          (memory.fill (i32.const 0) (i32.const 7) (i32.const 65536))
          (memory.copy (i32.const 0) (i32.const 1) (i32.const 65535))
          (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))`)
    meter.set(1e9)
    exports.grind(1)
    const perIteration = meter.used()
    expect(perIteration).toBeGreaterThan(2 * 4095)
    meter.set(10_000_000)
    const r = run(() => exports.grind(1_000_000)) // unmetered: ~130 GB moved, tens of seconds
    expect(isOutOfFuel(r.error)).toBe(true)
    expect(r.ms).toBeLessThan(500)
  })

  it('charges memory.fill in a loop-free function too', async () => {
    const { exports, meter } = await load(`(module (memory 1)
      (func (export "fill") (param $len i32) (memory.fill (i32.const 0) (i32.const 1) (local.get $len))))`)
    meter.set(1e9)
    exports.fill(64)
    const small = meter.used()
    meter.set(1e9)
    exports.fill(65536)
    expect(meter.used() - small).toBe((65536 - 64) / 16)
  })

  it('a zero budget stops the first metered call', async () => {
    const { exports } = await load(`(module (func (export "spin") (loop $l (br $l))))`)
    expect(isOutOfFuel(run(() => exports.spin()).error)).toBe(true)
  })

  it('moves the start function to an export so it runs with a budget', async () => {
    const { exports, meter, hasStart } = await load(`(module (global $g (mut i32) (i32.const 0))
      (func $s (loop $l (global.set $g (i32.add (global.get $g) (i32.const 1))) (br_if $l (i32.lt_u (global.get $g) (i32.const 10)))))
      (start $s)
      (func (export "g") (result i32) (global.get $g)))`)
    expect(hasStart).toBe(true)
    expect(exports.g()).toBe(0)
    meter.set(1000)
    exports[START_EXPORT]()
    expect(exports.g()).toBe(10)
  })

  it('leaves imports and leaf functions alone and keeps results intact', async () => {
    const seen: number[] = []
    const { exports, meter } = await load(
      `(module (import "env" "f" (func $f (param i32)))
        (func $leaf (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
        (func (export "go") (param i32) (result i32) (call $f (local.get 0)) (call $leaf (local.get 0))))`,
      { env: { f: (x: number) => seen.push(x) } },
    )
    meter.set(100)
    expect(exports.go(7)).toBe(21)
    expect(seen).toEqual([7])
    expect(meter.used()).toBeGreaterThan(0)
  })

  it('refuses garbage and reserved names with codes', async () => {
    await expect(instrumentFuel(new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ code: 'invalid_module' })
    await expect(instrumentFuel(await wat(`(module (global (export "${FUEL_EXPORT}") i32 (i32.const 0)))`))).rejects.toBeInstanceOf(InstrumentError)
    await expect(instrumentFuel(await wat(`(module (import "__omnirelay" "x" (func)))`))).rejects.toMatchObject({ code: 'reserved_name' })
  })
})

describe('instrumentFuel extras', () => {
  it('records the pages a failed memory.grow asked for', async () => {
    const { exports } = await load(`(module (memory 1 2) (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`)
    expect(exports.grow(1)).toBe(1)
    expect((exports.__omnirelay_grow_request as WebAssembly.Global).value).toBe(2n)
    expect(exports.grow(5)).toBe(-1)
    expect((exports.__omnirelay_grow_request as WebAssembly.Global).value).toBe(7n)
  })

  it('exports internal mutable globals for snapshots, metered or not', async () => {
    const bytes = await wat(`(module (global $a (mut i32) (i32.const 1)) (global $b i32 (i32.const 2)) (global $c (mut i64) (i64.const 3))
      (func (export "bump") (global.set $a (i32.add (global.get $a) (i32.const 1)))))`)
    const r = await instrumentFuel(bytes, { meter: false, exportMutableGlobals: true })
    expect(r.mutableGlobals).toEqual(['__omnirelay_global_0', '__omnirelay_global_2'])
    const inst = new WebAssembly.Instance(new WebAssembly.Module(r.bytes))
    expect(inst.exports[FUEL_EXPORT]).toBeUndefined()
    ;(inst.exports.bump as () => void)()
    expect((inst.exports.__omnirelay_global_0 as WebAssembly.Global).value).toBe(2)
  })
})

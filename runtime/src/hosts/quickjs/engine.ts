/**
 * The QuickJS engine as a metered, memory-capped Wasm instance.
 *
 * - The engine's own wasm (quickjs-emscripten, release-sync variant) is instrumented with the
 *   shared fuel pass (`sandbox/fuel.ts`) once (cached on disk), compiled once per process;
 *   every filter instance after that is `new WebAssembly.Instance`.
 *   Metering the engine (rather than relying on QuickJS's interrupt handler alone) is what
 *   stops loops inside built-ins (`'x'.repeat(1e9)`, a giant `Array.join`): those barely tick
 *   the interrupt counter, but they run engine wasm, which pays fuel.
 * - Each engine gets its own `WebAssembly.Memory({ initial, maximum })`: a hard cap V8 enforces
 *   (`setMemoryLimit` alone is not one under Emscripten, see shared/notes/sandboxes.md), and a
 *   separate heap per filter.
 *
 * Cost (measured): instrumenting the 500 KB engine ~0.8 s plus the binaryen import (once per
 * process, at the first QuickJS filter); a fresh engine instance ~3 ms.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, sep } from 'node:path'
import RELEASE_SYNC from '@jitl/quickjs-wasmfile-release-sync'
import { newQuickJSWASMModuleFromVariant, newVariant, type QuickJSSyncVariant, type QuickJSWASMModule } from 'quickjs-emscripten-core'
import { FUEL_EXPORT, FUEL_IMPORT_MODULE, FUEL_IMPORT_NAME, FuelMeter, fuelImports, instrumentFuel, START_EXPORT } from '../../sandbox/fuel.ts'
import { PAGE_BYTES } from '../../sandbox/memory-cap.ts'

/** The engine's wasm declares 16 MiB of initial memory: no QuickJS filter can have less. */
export const ENGINE_MIN_MEMORY_BYTES = 16 * 1024 * 1024

/** The metered engine module, compiled. */
export interface MeteredEngine {
  readonly module: WebAssembly.Module
  /** The engine's start function was moved to `START_EXPORT` by the fuel pass. */
  readonly hasStart: boolean
  /** Where it came from: instrumented now, or read from the on-disk cache. */
  readonly source: 'instrumented' | 'disk-cache'
}

let prepared: Promise<MeteredEngine> | undefined

/**
 * The instrumented, compiled engine module (built on first use, then shared by every filter).
 *
 * The instrumented bytes are also cached on disk under `node_modules/.cache/omnirelay/`,
 * keyed by the engine's digest and the fuel pass's own source: instrumenting needs binaryen,
 * whose import alone takes 0.3 s under plain node but 10–40 s when a TypeScript loader (tsx)
 * transforms its 13 MB of JS. The cache sits beside the code it derives from and is trusted
 * as much as `node_modules` itself; a file that does not compile or lacks the fuel export is
 * ignored and rewritten.
 */
export function meteredEngineModule(): Promise<MeteredEngine> {
  prepared ??= loadMeteredEngine()
  prepared.catch(() => {
    prepared = undefined
  })
  return prepared
}

async function loadMeteredEngine(): Promise<MeteredEngine> {
  const require = createRequire(import.meta.url)
  const wasmPath = require.resolve('@jitl/quickjs-wasmfile-release-sync/wasm')
  const bytes = new Uint8Array(await readFile(wasmPath))
  const passSource = await Promise.all(
    ['../../sandbox/fuel.ts', '../../sandbox/wasm-binary.ts'].map((p) => readFile(new URL(p, import.meta.url)).catch(() => Buffer.alloc(0))),
  )
  const key = createHash('sha256').update(bytes).update(passSource[0]!).update(passSource[1]!).digest('hex').slice(0, 32)
  const nodeModules = wasmPath.slice(0, wasmPath.lastIndexOf(`${sep}@jitl${sep}`))
  const cacheFile = join(nodeModules, '.cache', 'omnirelay', `quickjs-release-sync-metered-${key}.wasm`)
  try {
    const cached = new Uint8Array(await readFile(cacheFile))
    const module = await WebAssembly.compile(cached)
    const names = new Set(WebAssembly.Module.exports(module).map((e) => e.name))
    if (names.has(FUEL_EXPORT)) return { module, hasStart: names.has(START_EXPORT), source: 'disk-cache' }
  } catch {
    // absent or unusable: instrument below
  }
  const { bytes: metered, hasStart } = await instrumentFuel(bytes)
  const module = await WebAssembly.compile(metered)
  try {
    await mkdir(dirname(cacheFile), { recursive: true })
    const tmp = `${cacheFile}.${process.pid}.tmp`
    await writeFile(tmp, metered)
    await rename(tmp, cacheFile)
  } catch {
    // read-only install: every process instruments once, nothing else changes
  }
  return { module, hasStart, source: 'instrumented' }
}

/** What the sandbox needs of a fuel meter. */
export interface Meter {
  set(budget: number): void
  remaining(): number
  used(): number
}

/** Benchmarks only: an unmetered engine reports no fuel used and never runs out. */
const NO_METER: Meter = { set: () => {}, remaining: () => Number.MAX_SAFE_INTEGER, used: () => 0 }

/** One engine instance: a QuickJS module with its own capped heap and fuel meter. */
export interface Engine {
  readonly qjs: QuickJSWASMModule
  readonly meter: Meter
  readonly memory: WebAssembly.Memory
  readonly maxBytes: number
  /** How many times the metered code ran out of fuel (a trap: the instance must not be reused). */
  readonly traps: number
}

/**
 * Instantiates a fresh engine capped at `maxBytes` (rounded up to whole pages).
 * `startFuel` bounds the engine's own start-up code (it is ours, but metered all the same).
 */
export async function createEngine(maxBytes: number, opts: { startFuel?: number; meter?: boolean } = {}): Promise<Engine> {
  const maxPages = Math.ceil(Math.max(maxBytes, ENGINE_MIN_MEMORY_BYTES) / PAGE_BYTES)
  const memory = new WebAssembly.Memory({ initial: ENGINE_MIN_MEMORY_BYTES / PAGE_BYTES, maximum: maxPages })
  if (opts.meter === false) {
    const qjs = await newQuickJSWASMModuleFromVariant(newVariant(RELEASE_SYNC as unknown as QuickJSSyncVariant, { wasmMemory: memory }))
    return { qjs, meter: NO_METER, memory, maxBytes: maxPages * PAGE_BYTES, traps: 0 }
  }
  const startFuel = opts.startFuel ?? 1e10
  const mod = await meteredEngineModule()
  let meter: FuelMeter | undefined
  const engine = { traps: 0 }
  const outOfFuel = fuelImports()[FUEL_IMPORT_MODULE][FUEL_IMPORT_NAME]
  const fuel = {
    [FUEL_IMPORT_MODULE]: {
      [FUEL_IMPORT_NAME]: () => {
        engine.traps++
        outOfFuel()
      },
    },
  }
  // The package's types describe its CJS build; the ESM default export is the variant itself.
  const variant = newVariant(RELEASE_SYNC as unknown as QuickJSSyncVariant, {
    wasmMemory: memory,
    emscriptenModule: {
      // Emscripten hands us its import object; we add the fuel import and run the start
      // function the fuel pass moved out of the start section, under a budget.
      instantiateWasm(imports: WebAssembly.Imports, done: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void) {
        const instance = new WebAssembly.Instance(mod.module, { ...imports, ...fuel })
        meter = new FuelMeter(instance.exports)
        meter.set(startFuel)
        if (mod.hasStart) (instance.exports[START_EXPORT] as () => void)()
        done(instance, mod.module)
        return instance.exports
      },
    } as never,
  })
  const qjs = await newQuickJSWASMModuleFromVariant(variant)
  if (!meter) throw new Error('quickjs engine did not instantiate through the metered module')
  return Object.assign(engine, { qjs, meter, memory, maxBytes: maxPages * PAGE_BYTES })
}

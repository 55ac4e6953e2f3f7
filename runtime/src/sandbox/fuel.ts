/**
 * Fuel for core Wasm: an admission-time rewrite that makes a module count its own steps.
 *
 * V8 has no fuel, so we meter inside the module. The pass (binaryen.js) adds:
 *
 * - an exported mutable i64 global {@link FUEL_EXPORT}: the fuel left, with f64 accessor exports
 *   ({@link FUEL_GET_EXPORT}, {@link FUEL_SET_EXPORT}) the host uses. The host writes the
 *   budget before a call and reads what is left after. Its initial value is 0, so an
 *   instrumented module run by a host that forgot to set a budget stops at once.
 * - an imported function {@link FUEL_IMPORT_MODULE}.{@link FUEL_IMPORT_NAME} `() -> ()`: called
 *   when the global goes negative. The host's implementation should throw {@link OutOfFuel}
 *   (see {@link fuelImports}); an `unreachable` follows the call as a backstop, so a host
 *   that returns normally still gets a trap.
 * - a charge at every function entry and at every loop header: subtract the static cost of
 *   the code that follows up to the next loop header (every expression node counts 1, both
 *   arms of an `if` included, plus `CHARGE_COST` for the check itself), then trap when the
 *   global is negative. Functions with neither
 *   loops nor calls run a bounded number of steps and are left as they are (their cost is
 *   not counted: cheaper, and still deterministic).
 * - a charge proportional to length before every bulk memory operation (`memory.copy`,
 *   `memory.fill`, `memory.init`): one unit per {@link BULK_BYTES_PER_FUEL} bytes. Without it
 *   a single instruction could move gigabytes for one unit of fuel, and a loop of them
 *   would run for seconds on a budget meant for milliseconds.
 * - the start function (if any) is removed from the start section and exported as
 *   {@link START_EXPORT}: the host calls it right after instantiation, with a budget. Otherwise
 *   it would run inside `new WebAssembly.Instance()` before any budget could be set.
 *
 * Same module + same inputs => exactly the same fuel: the charges are static.
 *
 * Cost (see shared/notes/sandboxes.md): +26–33 % on a header filter, ~10 ms to instrument a
 * 19 KB module; importing binaryen takes ~260 ms, so it is imported lazily and this runs at
 * admission only (cache the result by digest: `module-cache.ts`).
 *
 * @example
 * const { bytes } = await instrumentFuel(wasmBytes)
 * const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { ...imports, ...fuelImports() })
 * const meter = new FuelMeter(inst)
 * meter.set(1_000_000)
 * try { (inst.exports.run as () => void)() } catch (e) { if (isOutOfFuel(e)) ... }
 * meter.used() // steps the call consumed
 */
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { stripStart, writeU32 } from './wasm-binary.ts'

/** Export name of the fuel global (mutable i64, fuel left; negative once exhausted). */
export const FUEL_EXPORT = '__omnirelay_fuel'
/**
 * Export names of `() -> f64` / `(f64) -> ()` accessors of the fuel global. The host uses them
 * rather than the global's `value`: an i64 global crosses into JS as a BigInt (~80 ns a read
 * and write, allocating), a call with an f64 ~17 ns; budgets stay below 2^53, so exact.
 */
export const FUEL_GET_EXPORT = '__omnirelay_fuel_get'
export const FUEL_SET_EXPORT = '__omnirelay_fuel_set'
/** Import module and field of the out-of-fuel function `() -> ()`. */
export const FUEL_IMPORT_MODULE = '__omnirelay'
export const FUEL_IMPORT_NAME = 'out_of_fuel'
/** Export name the module's original start function moves to. */
export const START_EXPORT = '__omnirelay_start'
/**
 * Export name of a mutable i64 global holding the page count the last `memory.grow` asked
 * for (current pages + delta). After a trap, a value above the memory's maximum means the
 * module ran out of its memory quota (`memory_exceeded`) rather than hitting a plain bug.
 */
export const GROW_EXPORT = '__omnirelay_grow_request'
/** Prefix of the exports added for internal mutable globals (`exportMutableGlobals`), for snapshots. */
export const GLOBAL_EXPORT_PREFIX = '__omnirelay_global_'

/**
 * Version of this pass's output. BUMP IT whenever `instrumentFuel` (or what it uses from
 * wasm-binary.ts) emits different code or exports: instrumented modules cached on disk are
 * keyed by it, and output of another version is never reused.
 */
export const INSTRUMENTATION_VERSION = 3
/** Custom section the pass appends to its output: {@link InstrumentMarker} as JSON. */
export const MARKER_SECTION = 'omnirelay.instrumented'

/** What produced an instrumented module, as recorded in its {@link MARKER_SECTION}. */
export interface InstrumentMarker {
  version: number
  meter: boolean
  exportMutableGlobals: boolean
  hasStart: boolean
  mutableGlobals: string[]
}

/**
 * The marker of an instrumented module, when it is one this version of the pass produced
 * with these options and every export the marker promises is there; else undefined.
 *
 * @example
 * const m = currentMarker(await WebAssembly.compile(cached), { meter: true, exportMutableGlobals: false })
 * if (!m) bytes = (await instrumentFuel(original)).bytes
 */
export function currentMarker(module: WebAssembly.Module, opts: { meter: boolean; exportMutableGlobals: boolean }): InstrumentMarker | undefined {
  const sections = WebAssembly.Module.customSections(module, MARKER_SECTION)
  if (sections.length !== 1) return undefined
  let m: InstrumentMarker
  try {
    m = JSON.parse(new TextDecoder().decode(sections[0])) as InstrumentMarker
  } catch {
    return undefined
  }
  if (m === null || typeof m !== 'object' || m.version !== INSTRUMENTATION_VERSION) return undefined
  if (m.meter !== opts.meter || m.exportMutableGlobals !== opts.exportMutableGlobals || !Array.isArray(m.mutableGlobals)) return undefined
  const names = new Set(WebAssembly.Module.exports(module).map((e) => e.name))
  if (m.meter && !(names.has(FUEL_EXPORT) && names.has(FUEL_GET_EXPORT) && names.has(FUEL_SET_EXPORT))) return undefined
  if (m.hasStart !== names.has(START_EXPORT)) return undefined
  if (!m.mutableGlobals.every((g) => typeof g === 'string' && g.startsWith(GLOBAL_EXPORT_PREFIX) && names.has(g))) return undefined
  return m
}

/** Thrown by the out-of-fuel import; hosts map it to `fuel_exhausted`. */
export class OutOfFuel extends Error {
  readonly code = 'fuel_exhausted'
  constructor() {
    super('out of fuel')
    this.name = 'OutOfFuel'
  }
}

/** One shared instance: throwing it allocates nothing, and the stack is useless anyway. */
const OUT_OF_FUEL = new OutOfFuel()

/** Whether `e` is what the out-of-fuel import threw. */
export function isOutOfFuel(e: unknown): boolean {
  return e === OUT_OF_FUEL || e instanceof OutOfFuel
}

function throwOutOfFuel(): never {
  throw OUT_OF_FUEL
}

/** The import object part an instrumented module needs. Merge it into your imports. */
export function fuelImports(): { [FUEL_IMPORT_MODULE]: { [FUEL_IMPORT_NAME]: () => never } } {
  return { [FUEL_IMPORT_MODULE]: { [FUEL_IMPORT_NAME]: throwOutOfFuel } }
}

/** Sets and reads an instrumented instance's fuel. One per instance; cheap to keep. */
export class FuelMeter {
  readonly #get: () => number
  readonly #set: (fuel: number) => void
  #budget = 0

  constructor(exports: WebAssembly.Exports) {
    const g = exports[FUEL_EXPORT]
    if (!(g instanceof WebAssembly.Global)) throw new Error(`module is not fuel-instrumented (no ${FUEL_EXPORT} export)`)
    const get = exports[FUEL_GET_EXPORT]
    const set = exports[FUEL_SET_EXPORT]
    if (typeof get === 'function' && typeof set === 'function') {
      this.#get = get as () => number
      this.#set = set as (fuel: number) => void
    } else {
      // Output of an older pass (a cache the caller keeps itself): the global, through BigInt.
      this.#get = () => Number(g.value as bigint)
      this.#set = (fuel) => (g.value = BigInt(fuel))
    }
  }

  /** Gives the instance `budget` steps from now on. */
  set(budget: number): void {
    this.#budget = budget
    this.#set(budget)
  }

  /** Fuel left (negative after exhaustion). */
  remaining(): number {
    return this.#get()
  }

  /** Steps used since the last `set` (may exceed the budget by the last charge). */
  used(): number {
    return this.#budget - this.remaining()
  }
}

export interface InstrumentOptions {
  /** Add the fuel charges. Default true; false still applies the other rewrites below. */
  meter?: boolean
  /** Charge leaf functions (no loop, no call) too. Default false: they are bounded anyway. */
  meterLeafFunctions?: boolean
  /**
   * Export every internal mutable global as `GLOBAL_EXPORT_PREFIX + index`, so a host can
   * snapshot and restore instance state (per-request isolation). Default false.
   */
  exportMutableGlobals?: boolean
}

export interface InstrumentResult {
  bytes: Uint8Array
  /** Whether the module had a start function, now exported as `START_EXPORT`. */
  hasStart: boolean
  /** Export names of the mutable globals a snapshot must cover (with `exportMutableGlobals`). */
  mutableGlobals: string[]
  stats: { functions: number; meteredFunctions: number; loops: number; ms: number }
}

/** Why a module cannot be instrumented (malformed, unsupported feature, reserved names used). */
export class InstrumentError extends Error {
  readonly code: 'invalid_module' | 'unsupported_feature' | 'reserved_name'
  constructor(code: InstrumentError['code'], message: string) {
    super(message)
    this.name = 'InstrumentError'
    this.code = code
  }
}

type Binaryen = typeof import('binaryen').default

/** What one charge site costs on top of the code it covers (the check's own instructions). */
export const CHARGE_COST = 6

/**
 * Bytes a bulk memory operation moves per unit of fuel. V8 copies about 16 bytes in the time
 * of one ordinary instruction, so this keeps fuel proportional to time.
 */
export const BULK_BYTES_PER_FUEL = 16

/** Expression wrappers binaryen.js has at runtime but its typings do not declare. */
interface Wrappers {
  Function: { setBody(func: number, body: number): void }
  Loop: { getBody(expr: number): number; setBody(expr: number, body: number): void }
  MemoryGrow: { getDelta(expr: number): number; setDelta(expr: number, delta: number): void }
  MemoryCopy: BulkSize
  MemoryFill: BulkSize
  MemoryInit: BulkSize
}
interface BulkSize {
  getSize(expr: number): number
  setSize(expr: number, size: number): void
}
const w = (b: Binaryen) => b as unknown as Wrappers
let binaryenPromise: Promise<Binaryen> | undefined

/**
 * Loads binaryen once (≈260 ms cold). Call early at admission to overlap it with other work.
 *
 * Under tsx (how the runtime runs TypeScript) a plain `import('binaryen')` takes ~15 s: tsx
 * rewrites every ESM file's dynamic imports, source map included, and binaryen is one 14 MB
 * file. A URL in a tsx namespace other than the active one is loaded untouched, so we import
 * the file with such a query; anywhere else (plain Node, vitest) the query is harmless, and
 * if that import fails for any reason the ordinary one is used.
 */
export function loadBinaryen(): Promise<Binaryen> {
  binaryenPromise ??= (async () => {
    try {
      const file = createRequire(import.meta.url).resolve('binaryen')
      return ((await import(`${pathToFileURL(file).href}?tsx-namespace=omnirelay-untransformed`)) as { default: Binaryen }).default
    } catch {
      return (await import('binaryen')).default
    }
  })()
  return binaryenPromise
}

/**
 * Features we accept. Each is one V8 in Node 20+ runs and that proxy-wasm toolchains emit;
 * GC, strings and stack switching are refused (the walker below does not know their nodes).
 */
function acceptedFeatures(b: Binaryen): number {
  const F = b.Features
  return (
    F.MutableGlobals |
    F.NontrappingFPToInt |
    F.SIMD128 |
    F.BulkMemory |
    F.BulkMemoryOpt |
    F.SignExt |
    F.ReferenceTypes |
    F.Multivalue |
    F.TailCall |
    F.ExtendedConst
  )
}

/**
 * Rewrites `wasm` so it meters itself (see the file comment for the exact contract).
 * Rejects with an `InstrumentError` for malformed modules, unsupported features, or modules
 * that already use the reserved names.
 */
export async function instrumentFuel(wasm: Uint8Array, opts: InstrumentOptions = {}): Promise<InstrumentResult> {
  const b = await loadBinaryen()
  const t0 = performance.now()
  if (!WebAssembly.validate(wasm)) throw new InstrumentError('invalid_module', 'not a valid WebAssembly module')
  const mod0 = WebAssembly.Module.imports(new WebAssembly.Module(wasm))
  for (const imp of mod0) {
    if (imp.module === FUEL_IMPORT_MODULE) throw new InstrumentError('reserved_name', `module imports from the reserved module "${FUEL_IMPORT_MODULE}"`)
  }
  let m: InstanceType<Binaryen['Module']>
  try {
    m = b.readBinary(wasm)
  } catch (e) {
    throw new InstrumentError('invalid_module', `binaryen could not read the module: ${(e as Error).message}`)
  }
  try {
    m.setFeatures(acceptedFeatures(b))
    for (let i = 0; i < m.getNumExports(); i++) {
      const name = b.getExportInfo(m.getExportByIndex(i)).name
      if (name === FUEL_EXPORT || name === FUEL_GET_EXPORT || name === FUEL_SET_EXPORT || name === START_EXPORT || name === GROW_EXPORT || name.startsWith(GLOBAL_EXPORT_PREFIX)) throw new InstrumentError('reserved_name', `module already exports "${name}"`)
    }
    if (!m.validate()) throw new InstrumentError('unsupported_feature', 'module uses a feature the fuel pass does not accept (GC, strings, threads, exceptions...)')

    const meter = opts.meter ?? true
    const mutableGlobals: string[] = []
    if (opts.exportMutableGlobals) {
      for (let i = 0; i < m.getNumGlobals(); i++) {
        const g = b.getGlobalInfo(m.getGlobalByIndex(i))
        if (!g.mutable || g.module) continue
        const exportName = `${GLOBAL_EXPORT_PREFIX}${i}`
        m.addGlobalExport(g.name, exportName)
        mutableGlobals.push(exportName)
      }
    }
    const fuelGlobal = uniqueName(m, '__omnirelay_fuel')
    const oofFunc = uniqueName(m, '__omnirelay_out_of_fuel')
    const growGlobal = uniqueName(m, '__omnirelay_grow_request')
    const growProbe = uniqueName(m, '__omnirelay_grow_probe')
    const bulkCharge = uniqueName(m, '__omnirelay_bulk_charge')
    if (meter) {
      m.addGlobal(fuelGlobal, b.i64, true, m.i64.const(0n))
      m.addGlobalExport(fuelGlobal, FUEL_EXPORT)
      const fuelGet = uniqueName(m, '__omnirelay_fuel_get')
      const fuelSet = uniqueName(m, '__omnirelay_fuel_set')
      m.addFunction(fuelGet, b.none, b.f64, [], m.f64.convert_s.i64(m.global.get(fuelGlobal, b.i64)))
      m.addFunction(fuelSet, b.f64, b.none, [], m.global.set(fuelGlobal, m.i64.trunc_s.f64(m.local.get(0, b.f64))))
      m.addFunctionExport(fuelGet, FUEL_GET_EXPORT)
      m.addFunctionExport(fuelSet, FUEL_SET_EXPORT)
      m.addFunctionImport(oofFunc, FUEL_IMPORT_MODULE, FUEL_IMPORT_NAME, b.none, b.none)
      // bulk_charge(size) = (fuel -= size / BULK_BYTES_PER_FUEL; trap when negative; size): wraps
      // the size operand of every bulk memory operation, so the charge comes before the work.
      m.addFunction(bulkCharge, b.i32, b.i32, [], m.block(null, [
        m.global.set(fuelGlobal, m.i64.sub(
          m.global.get(fuelGlobal, b.i64),
          m.i64.extend_u(m.i32.shr_u(m.local.get(0, b.i32), m.i32.const(Math.log2(BULK_BYTES_PER_FUEL)))),
        )),
        m.if(
          m.i64.lt_s(m.global.get(fuelGlobal, b.i64), m.i64.const(0n)),
          m.block(null, [m.call(oofFunc, [], b.none), m.unreachable()], b.auto),
        ),
        m.local.get(0, b.i32),
      ], b.i32))
    }
    if (m.hasMemory()) {
      m.addGlobal(growGlobal, b.i64, true, m.i64.const(0n))
      m.addGlobalExport(growGlobal, GROW_EXPORT)
      // probe(delta) = (grow_request = memory.size + delta; delta): wraps every memory.grow delta.
      m.addFunction(growProbe, b.i32, b.i32, [], m.block(null, [
        m.global.set(growGlobal, m.i64.add(m.i64.extend_u(m.memory.size()), m.i64.extend_u(m.local.get(0, b.i32)))),
        m.local.get(0, b.i32),
      ], b.i32))
    }

    // Each charge also pays for itself (~6 instructions): an empty `loop br` then costs 7 per
    // iteration, so fuel tracks executed instructions and `while(true)` stops in milliseconds.
    const charge = (cost: number) =>
      m.block(null, [
        m.global.set(fuelGlobal, m.i64.sub(m.global.get(fuelGlobal, b.i64), m.i64.const(BigInt(cost + CHARGE_COST)))),
        m.if(
          m.i64.lt_s(m.global.get(fuelGlobal, b.i64), m.i64.const(0n)),
          m.block(null, [m.call(oofFunc, [], b.none), m.unreachable()], b.auto),
        ),
      ], b.none)

    const probe = m.hasMemory() ? (delta: number) => m.call(growProbe, [delta], b.i32) : undefined
    const bulk = meter ? (size: number) => m.call(bulkCharge, [size], b.i32) : undefined
    const walker = new Walker(b, m, charge, probe, bulk)
    walker.meter = meter
    let meteredFunctions = 0
    let functions = 0
    for (let i = 0; i < m.getNumFunctions(); i++) {
      const f = m.getFunctionByIndex(i)
      const info = b.getFunctionInfo(f)
      if (info.module || info.name === oofFunc || info.name === growProbe || info.name === bulkCharge) continue // an import, or ours
      functions++
      walker.reset()
      const cost = walker.visit(info.body)
      if (!meter || (!walker.hasLoop && !walker.hasCall && !opts.meterLeafFunctions)) continue
      meteredFunctions++
      w(b).Function.setBody(f, m.block(null, [charge(cost), info.body], b.auto))
    }

    // binaryen cannot drop a start function: export it here, strip the section from the bytes.
    const start = m.getStart()
    if (start) m.addFunctionExport(b.getFunctionInfo(start).name, START_EXPORT)
    if (!m.validate()) throw new InstrumentError('invalid_module', 'instrumented module failed validation')
    const { bytes: stripped, hadStart: hasStart } = stripStart(m.emitBinary())
    const marker: InstrumentMarker = { version: INSTRUMENTATION_VERSION, meter, exportMutableGlobals: opts.exportMutableGlobals ?? false, hasStart, mutableGlobals }
    const bytes = appendCustomSection(stripped, MARKER_SECTION, new TextEncoder().encode(JSON.stringify(marker)))
    return { bytes, hasStart, mutableGlobals, stats: { functions, meteredFunctions, loops: walker.loops, ms: performance.now() - t0 } }
  } finally {
    m.dispose()
  }
}

function appendCustomSection(wasm: Uint8Array, name: string, payload: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(name)
  const body: number[] = []
  writeU32(body, nameBytes.length)
  const head: number[] = [0]
  writeU32(head, body.length + nameBytes.length + payload.length)
  const out = new Uint8Array(wasm.length + head.length + body.length + nameBytes.length + payload.length)
  let pos = 0
  for (const part of [wasm, head, body, nameBytes, payload]) {
    out.set(part, pos)
    pos += part.length
  }
  return out
}

function uniqueName(m: { getGlobal(n: string): number; getFunction(n: string): number }, base: string): string {
  let name = base
  for (let i = 1; m.getGlobal(name) || m.getFunction(name); i++) name = `${base}_${i}`
  return name
}

/**
 * Walks one function body: returns the static cost of the code outside loops and instruments
 * every loop header with the cost of its body (nested loops excluded: they charge themselves).
 *
 * Children are listed per expression id. An id not listed is refused rather than walked
 * blindly: a loop hidden inside an unknown node would run unmetered.
 */
interface BlockBuilder {
  block(name: string | null, children: number[], type?: number): number
}

class Walker {
  hasLoop = false
  hasCall = false
  loops = 0
  meter = true
  readonly #b: Binaryen
  readonly #module: BlockBuilder
  readonly #charge: (cost: number) => number
  readonly #fields = new Map<number, readonly string[]>()
  readonly #leaves = new Set<number>()
  readonly #calls = new Set<number>()

  readonly #probe: ((delta: number) => number) | undefined
  readonly #bulk: ((size: number) => number) | undefined
  readonly #bulkWrappers: Map<number, BulkSize>

  constructor(
    b: Binaryen,
    m: BlockBuilder,
    charge: (cost: number) => number,
    probe?: (delta: number) => number,
    bulk?: (size: number) => number,
  ) {
    this.#b = b
    this.#module = m
    this.#probe = probe
    this.#bulk = bulk
    this.#bulkWrappers = new Map([
      [b.MemoryCopyId, w(b).MemoryCopy],
      [b.MemoryFillId, w(b).MemoryFill],
      [b.MemoryInitId, w(b).MemoryInit],
    ])
    this.#charge = charge
    const f = (id: number, ...names: string[]) => this.#fields.set(id, names)
    f(b.BlockId, 'children')
    f(b.IfId, 'condition', 'ifTrue', 'ifFalse')
    f(b.BreakId, 'condition', 'value')
    f(b.SwitchId, 'condition', 'value')
    f(b.CallId, 'operands')
    f(b.CallIndirectId, 'target', 'operands')
    f(b.LocalSetId, 'value')
    f(b.GlobalSetId, 'value')
    f(b.LoadId, 'ptr')
    f(b.StoreId, 'ptr', 'value')
    f(b.UnaryId, 'value')
    f(b.BinaryId, 'left', 'right')
    f(b.SelectId, 'ifTrue', 'ifFalse', 'condition')
    f(b.DropId, 'value')
    f(b.ReturnId, 'value')
    f(b.MemoryGrowId, 'delta')
    f(b.SIMDExtractId, 'vec')
    f(b.SIMDReplaceId, 'vec', 'value')
    f(b.SIMDShuffleId, 'left', 'right')
    f(b.SIMDTernaryId, 'a', 'b', 'c')
    f(b.SIMDShiftId, 'vec', 'shift')
    f(b.SIMDLoadId, 'ptr')
    f(b.SIMDLoadStoreLaneId, 'ptr', 'vec')
    f(b.MemoryInitId, 'dest', 'offset', 'size')
    f(b.MemoryCopyId, 'dest', 'source', 'size')
    f(b.MemoryFillId, 'dest', 'value', 'size')
    f(b.RefIsNullId, 'value')
    f(b.RefAsId, 'value')
    f(b.RefEqId, 'left', 'right')
    f(b.TableGetId, 'index')
    f(b.TableSetId, 'index', 'value')
    f(b.TableGrowId, 'value', 'delta')
    f(b.TupleMakeId, 'operands')
    f(b.TupleExtractId, 'tuple')
    for (const id of [
      b.LocalGetId, b.GlobalGetId, b.ConstId, b.MemorySizeId, b.NopId, b.UnreachableId,
      b.DataDropId, b.RefNullId, b.RefFuncId, b.TableSizeId,
    ]) this.#leaves.add(id)
    this.#calls.add(b.CallId)
    this.#calls.add(b.CallIndirectId)
  }

  reset(): void {
    this.hasLoop = false
    this.hasCall = false
  }

  visit(expr: number): number {
    const b = this.#b
    const id = b.getExpressionId(expr)
    if (this.#leaves.has(id)) return 1
    if (id === b.LoopId) {
      this.hasLoop = true
      this.loops++
      const body = w(b).Loop.getBody(expr)
      const bodyCost = this.visit(body)
      if (this.meter) w(b).Loop.setBody(expr, this.#module.block(null, [this.#charge(bodyCost), body], b.auto))
      return 1
    }
    if (id === b.MemoryGrowId && this.#probe) {
      const delta = w(b).MemoryGrow.getDelta(expr)
      const cost = 1 + this.visit(delta)
      w(b).MemoryGrow.setDelta(expr, this.#probe(delta))
      return cost
    }
    const fields = this.#fields.get(id)
    if (!fields) throw new InstrumentError('unsupported_feature', `expression kind ${id} is not supported by the fuel pass`)
    if (this.#calls.has(id)) this.hasCall = true
    const info = b.getExpressionInfo(expr) as unknown as Record<string, unknown>
    let cost = 1
    for (const name of fields) {
      const v = info[name]
      if (Array.isArray(v)) {
        for (const c of v as number[]) if (c) cost += this.visit(c)
      } else if (typeof v === 'number' && v !== 0) cost += this.visit(v)
    }
    const bulkOp = this.#bulk && this.#bulkWrappers.get(id)
    if (bulkOp) {
      // The size operand was walked above (its static cost counted); now its value is charged too.
      bulkOp.setSize(expr, this.#bulk!(bulkOp.getSize(expr)))
    }
    return cost
  }

}

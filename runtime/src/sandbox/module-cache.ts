/**
 * Compiled, instrumented modules by digest. Instrumentation and compilation happen once per
 * (module digest, metering, memory cap); every instance after that is `new Instance(module)`.
 * Concurrent requests for the same key share one in-flight promise; failures are not cached.
 *
 * The digest is always recomputed from the bytes (sha256 is ~0.3 ms per 100 KB): a caller's
 * digest is a claim, and a wrong one must not serve another module's code.
 *
 * @example
 * const prepared = await moduleCache.prepare(bytes, { fuel: true, maxPages: 256 })
 * const inst = new WebAssembly.Instance(prepared.module, imports)
 */
import { createHash } from 'node:crypto'
import { instrumentFuel } from './fuel.ts'
import type { InstrumentResult } from './fuel.ts'
import { capMemory } from './memory-cap.ts'
import type { MemoryFacts } from './memory-cap.ts'
import { stripStart } from './wasm-binary.ts'

export interface PrepareOptions {
  /** Instrument for fuel (see fuel.ts). */
  fuel: boolean
  /** Export internal mutable globals so instances can be snapshotted (per-request isolation). */
  snapshot?: boolean
  /** Cap every memory at this many 64 KiB pages; absent leaves memories as declared. */
  maxPages?: number
}

export interface PreparedModule {
  readonly module: WebAssembly.Module
  /** sha256 hex of the original bytes. */
  readonly digest: string
  readonly metered: boolean
  /**
   * The module's start function was moved to the `START_EXPORT` export (always when metered,
   * so that it runs with a budget; also unmetered, so that start traps surface as calls).
   */
  readonly hasStart: boolean
  readonly memories: readonly MemoryFacts[]
  /** Export names of the mutable globals a snapshot must cover (with `snapshot`). */
  readonly mutableGlobals: readonly string[]
  readonly imports: readonly WebAssembly.ModuleImportDescriptor[]
  readonly exports: readonly WebAssembly.ModuleExportDescriptor[]
  /** Milliseconds spent instrumenting and compiling (0 when served from cache). */
  readonly prepareMs: number
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** A bounded cache (oldest entry evicted first): filters come and go with config epochs. */
export class ModuleCache {
  readonly #instrumented = new Map<string, Promise<InstrumentResult>>()
  readonly #compiled = new Map<string, Promise<PreparedModule>>()
  readonly #max: number

  constructor(maxEntries = 256) {
    this.#max = maxEntries
  }

  /** Instruments (if asked), caps, compiles; or returns the cached result. */
  prepare(bytes: Uint8Array, opts: PrepareOptions): Promise<PreparedModule> {
    const digest = sha256Hex(bytes)
    const key = `${digest}:${opts.fuel ? 'f' : 'u'}${opts.snapshot ? 's' : '-'}:${opts.maxPages ?? '-'}`
    let p = this.#compiled.get(key)
    if (p) return p.then((m) => (m.prepareMs === 0 ? m : { ...m, prepareMs: 0 }))
    p = this.#build(bytes, digest, opts)
    this.#remember(this.#compiled, key, p)
    return p
  }

  get size(): number {
    return this.#compiled.size
  }

  clear(): void {
    this.#compiled.clear()
    this.#instrumented.clear()
  }

  async #build(bytes: Uint8Array, digest: string, opts: PrepareOptions): Promise<PreparedModule> {
    const t0 = performance.now()
    let out: Uint8Array
    let hasStart: boolean
    let mutableGlobals: string[] = []
    if (opts.fuel || opts.snapshot) {
      const ikey = `${digest}:${opts.fuel ? 'f' : 'u'}${opts.snapshot ? 's' : '-'}`
      let ip = this.#instrumented.get(ikey)
      if (!ip) {
        ip = instrumentFuel(bytes, { meter: opts.fuel, exportMutableGlobals: opts.snapshot ?? false })
        this.#remember(this.#instrumented, ikey, ip)
      }
      const r = await ip
      out = r.bytes
      hasStart = r.hasStart
      mutableGlobals = r.mutableGlobals
    } else {
      const s = stripStart(bytes)
      out = s.bytes
      hasStart = s.hadStart
    }
    let memories: MemoryFacts[] = []
    if (opts.maxPages !== undefined) {
      const capped = capMemory(out, opts.maxPages)
      out = capped.bytes
      memories = capped.memories
    }
    const module = await WebAssembly.compile(out)
    return {
      module,
      digest,
      metered: opts.fuel,
      hasStart,
      memories,
      mutableGlobals,
      imports: WebAssembly.Module.imports(module),
      exports: WebAssembly.Module.exports(module),
      prepareMs: performance.now() - t0,
    }
  }

  #remember<T>(map: Map<string, Promise<T>>, key: string, p: Promise<T>): void {
    map.set(key, p)
    p.catch(() => {
      if (map.get(key) === p) map.delete(key)
    })
    if (map.size > this.#max) map.delete(map.keys().next().value!)
  }
}

/** The process-wide cache the hosts share. */
export const moduleCache = new ModuleCache()

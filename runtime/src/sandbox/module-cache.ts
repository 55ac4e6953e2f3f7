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
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, sep } from 'node:path'
import { sha256Hex } from '../bundles/digest.ts'
import { INSTRUMENTATION_VERSION, currentMarker, instrumentFuel } from './fuel.ts'
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

export interface ModuleCacheOptions {
  /** Entries kept in memory (oldest evicted first). Default 256. */
  maxEntries?: number
  /**
   * A directory for instrumented modules, so another process (a worker, the next start)
   * skips binaryen (≈260 ms to import) and the pass. Best effort: unreadable or unwritable
   * is the same as absent. Files are keyed by module digest, options and the pass's
   * `INSTRUMENTATION_VERSION`, and a file is used only when the marker the pass wrote into it
   * matches (version, options, promised exports); anything else is rebuilt and overwritten.
   */
  diskDir?: string
}

/** A bounded cache (oldest entry evicted first): filters come and go with config epochs. */
export class ModuleCache {
  readonly #instrumented = new Map<string, Promise<InstrumentResult>>()
  readonly #compiled = new Map<string, Promise<PreparedModule>>()
  readonly #max: number
  readonly #diskDir: string | undefined

  constructor(opts: ModuleCacheOptions = {}) {
    this.#max = opts.maxEntries ?? 256
    this.#diskDir = opts.diskDir
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

  /**
   * Primes the instrumentation step for `original` with a result the caller already has
   * (the registry's admission instruments a module, then smoke-runs it through the host).
   * Trusted input: it is used as is for this digest and these options.
   *
   * @example
   * const r = await instrumentFuel(bytes)
   * cache.seedInstrumented(bytes, { fuel: true }, r)
   */
  seedInstrumented(
    original: Uint8Array,
    opts: Pick<PrepareOptions, 'fuel' | 'snapshot'>,
    result: Pick<InstrumentResult, 'bytes' | 'hasStart'> & { mutableGlobals?: string[] },
  ): void {
    const ikey = `${sha256Hex(original)}:${opts.fuel ? 'f' : 'u'}${opts.snapshot ? 's' : '-'}`
    const full: InstrumentResult = {
      bytes: result.bytes,
      hasStart: result.hasStart,
      mutableGlobals: result.mutableGlobals ?? [],
      stats: { functions: 0, meteredFunctions: 0, loops: 0, ms: 0 },
    }
    this.#remember(this.#instrumented, ikey, Promise.resolve(full))
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
        ip = this.#instrument(bytes, ikey, { meter: opts.fuel, exportMutableGlobals: opts.snapshot ?? false })
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

  async #instrument(bytes: Uint8Array, ikey: string, o: { meter: boolean; exportMutableGlobals: boolean }): Promise<InstrumentResult> {
    const file = this.#diskDir && join(this.#diskDir, `${ikey.replace(':', '-')}-v${INSTRUMENTATION_VERSION}.wasm`)
    if (file) {
      try {
        const cached = new Uint8Array(await readFile(file))
        const marker = currentMarker(await WebAssembly.compile(cached), o)
        if (marker) return { bytes: cached, hasStart: marker.hasStart, mutableGlobals: marker.mutableGlobals, stats: { functions: 0, meteredFunctions: 0, loops: 0, ms: 0 } }
      } catch {
        // absent or unusable: instrument
      }
    }
    const r = await instrumentFuel(bytes, o)
    if (file) {
      try {
        await mkdir(dirname(file), { recursive: true })
        const tmp = `${file}.${process.pid}.tmp`
        await writeFile(tmp, r.bytes)
        await rename(tmp, file)
      } catch {
        // read-only install: fine, just slower next time
      }
    }
    return r
  }

  #remember<T>(map: Map<string, Promise<T>>, key: string, p: Promise<T>): void {
    map.set(key, p)
    p.catch(() => {
      if (map.get(key) === p) map.delete(key)
    })
    if (map.size > this.#max) map.delete(map.keys().next().value!)
  }
}

function defaultDiskDir(): string | undefined {
  const env = process.env.OMNIRELAY_WASM_CACHE_DIR
  if (env === 'off') return undefined
  if (env) return env
  try {
    const p = createRequire(import.meta.url).resolve('binaryen')
    return join(p.slice(0, p.lastIndexOf(`${sep}node_modules${sep}`) + 13), '.cache', 'omnirelay', 'wasm')
  } catch {
    return undefined
  }
}

/**
 * The process-wide cache the hosts share; instrumented modules also go to
 * `node_modules/.cache/omnirelay/wasm` (override with OMNIRELAY_WASM_CACHE_DIR, `off` to disable).
 */
export const moduleCache = new ModuleCache({ diskDir: defaultDiskDir() })

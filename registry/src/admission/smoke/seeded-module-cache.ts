/**
 * Adapter: a ModuleCache that can be handed a module's fuel instrumentation, so the smoke run
 * through the Wasm host reuses what admission step 4 just produced instead of instrumenting
 * the same bytes a second time (instrumentation is most of the cost of admission: ~240 ms of
 * ~570 ms for a 94 KB module on this machine).
 *
 * It mirrors ModuleCache's own build for the metered, non-snapshot case, which is the only one
 * seeded; everything else goes to the real cache. Wanted upstream: a way to prime
 * `sandbox/module-cache.ts` with an InstrumentResult (then this file goes away).
 */
import { ModuleCache, sha256Hex, type PrepareOptions, type PreparedModule } from '@omnirelay/runtime/sandbox/module-cache.ts'
import { capMemory, type MemoryFacts } from '@omnirelay/runtime/sandbox/memory-cap.ts'

interface Seed {
  bytes: Uint8Array
  hasStart: boolean
}

export class SeededModuleCache extends ModuleCache {
  readonly #seeds = new Map<string, Seed>()

  /** Registers the instrumented form of `original`; returns a function that forgets it. */
  seed(original: Uint8Array, instrumented: Seed): () => void {
    const digest = sha256Hex(original)
    this.#seeds.set(digest, instrumented)
    return () => {
      if (this.#seeds.get(digest) === instrumented) this.#seeds.delete(digest)
    }
  }

  override prepare(bytes: Uint8Array, opts: PrepareOptions): Promise<PreparedModule> {
    const digest = sha256Hex(bytes)
    const seed = opts.fuel && !opts.snapshot ? this.#seeds.get(digest) : undefined
    if (!seed) return super.prepare(bytes, opts)
    return (async () => {
      const t0 = performance.now()
      let out = seed.bytes
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
        metered: true,
        hasStart: seed.hasStart,
        memories,
        mutableGlobals: [],
        imports: WebAssembly.Module.imports(module),
        exports: WebAssembly.Module.exports(module),
        prepareMs: performance.now() - t0,
      }
    })()
  }
}

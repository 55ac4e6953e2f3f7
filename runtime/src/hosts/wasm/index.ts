/**
 * The Wasm extension host: proxy-wasm ABI v0.2.1 modules under fuel, a memory cap, a
 * wall-clock watchdog, a failure policy, an isolation mode and capability grants.
 *
 * Layout: `abi.ts` (the spec's numbers), `capabilities.ts` (import -> grant table, load-time
 * check, `requiredCapabilities` for bundle builds), `hostcalls.ts` + `wasi.ts` (the host
 * functions), `guest-memory.ts` (bounds-checked memory access), `guest-metrics.ts`,
 * `vm.ts` (one instance: calls, fuel, watchdog, traps, snapshots), `factory.ts` (pooling,
 * isolation, failure policy, reload backoff). Fuel instrumentation, memory caps and the
 * compiled-module cache live in `../../sandbox/`.
 *
 * @example
 * const factory = await host.createFactory(def, artifact, services)
 * const filter = factory.createStream(stream)
 * filter.onRequestHeaders?.(true)
 */
import type { ExtensionHost } from '../host-services.ts'
import { createWasmFactory, type WasmHostOptions } from './factory.ts'

/** A Wasm host with non-default options (benchmarks: `{ meter: false }`). */
export function createWasmHost(opts: WasmHostOptions = {}): ExtensionHost {
  return {
    kind: 'wasm',
    createFactory: (def, artifact, services, build) => createWasmFactory(def, artifact, services, build ? { ...opts, ...build } : opts),
  }
}

export const host: ExtensionHost = createWasmHost()

export { requiredCapabilities, CapabilityError } from './capabilities.ts'
export { WasmLoadError, WASM_DEFAULTS } from './factory.ts'
export type { WasmHostOptions } from './factory.ts'

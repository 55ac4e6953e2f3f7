/**
 * Picks the smoke runner: the runtime's Wasm host when it is installed (`auto`, `host`), the
 * built-in ABI driver otherwise (`auto`, `abi`). The choice is made once per registry.
 */
import { runAbiSmoke } from './abi-runner.ts'
import { hostSmokeRunner } from './host-runner.ts'
import { SeededModuleCache } from './seeded-module-cache.ts'
import type { SmokeRunner } from './runner.ts'

export type { SmokeInput, SmokeReport, SmokeRunner } from './runner.ts'

export async function selectSmokeRunner(mode: 'auto' | 'host' | 'abi'): Promise<SmokeRunner> {
  if (mode === 'abi') return runAbiSmoke
  try {
    const { createWasmHost } = await import('@omnirelay/runtime/hosts/wasm/index.ts')
    // A private, small module cache: modules under review must not crowd the process-wide
    // cache when the registry runs inside MeshKit central. Seeded with admission's own
    // instrumentation so the host does not instrument twice.
    const cache = new SeededModuleCache({ maxEntries: 8 })
    return hostSmokeRunner(createWasmHost({ cache }), cache)
  } catch (e) {
    // Only a host that is not installed falls back; a host that fails to load is an error.
    if (mode === 'host' || (e as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw e
    return runAbiSmoke
  }
}

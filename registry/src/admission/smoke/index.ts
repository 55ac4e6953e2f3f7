/**
 * Picks the smoke runners, once per registry. Wasm: the runtime's Wasm host when it is
 * installed (`auto`, `host`), the built-in ABI driver otherwise (`auto`, `abi`). QuickJS: the
 * runtime's QuickJS host when installed (`auto`, `host`); with `abi`, or when it is not
 * installed, QuickJS bundles are not run (report `runner: 'none'`). Native bundles never run.
 */
import { runAbiSmoke } from './abi-runner.ts'
import { hostSmokeRunner } from './host-runner.ts'
import { ModuleCache } from '@omnirelay/runtime/sandbox/module-cache.ts'
import type { SmokeRunner } from './runner.ts'

export type { SmokeInput, SmokeReport, SmokeRunner } from './runner.ts'

export async function selectSmokeRunner(mode: 'auto' | 'host' | 'abi'): Promise<SmokeRunner> {
  const wasm = await wasmRunner(mode)
  const quickjs = mode === 'abi' ? undefined : await quickJsRunner(mode)
  return async (input) => {
    if (input.manifest.kind === 'wasm') return wasm(input)
    if (input.manifest.kind === 'quickjs' && quickjs) return quickjs(input)
    return { runner: 'none', requests: 0, maxFuel: null, localReplies: 0, ms: 0 }
  }
}

/** Only a host that is not installed falls back; a host that fails to load is an error. */
function notInstalled(e: unknown): boolean {
  return (e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND'
}

async function wasmRunner(mode: 'auto' | 'host' | 'abi'): Promise<SmokeRunner> {
  if (mode === 'abi') return runAbiSmoke
  try {
    const { createWasmHost } = await import('@omnirelay/runtime/hosts/wasm/index.ts')
    // A private, small module cache: modules under review must not crowd the process-wide
    // cache when the registry runs inside MeshKit central. Seeded with admission's own
    // instrumentation so the host does not instrument twice.
    const cache = new ModuleCache({ maxEntries: 8 })
    return hostSmokeRunner(createWasmHost({ cache }), cache)
  } catch (e) {
    if (mode === 'host' || !notInstalled(e)) throw e
    return runAbiSmoke
  }
}

async function quickJsRunner(mode: 'auto' | 'host'): Promise<SmokeRunner | undefined> {
  try {
    const { host } = await import('@omnirelay/runtime/hosts/quickjs/index.ts')
    return hostSmokeRunner(host)
  } catch (e) {
    if (mode === 'host' || !notInstalled(e)) throw e
    return undefined
  }
}

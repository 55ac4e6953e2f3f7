/**
 * Admission step 4 for Wasm bundles, beyond what bundle verification already checked (valid
 * module, imports' capabilities within the manifest's request):
 * - every import is one the runtime's Wasm host links (its own table, hosts/wasm/capabilities.ts);
 * - the module exports the ABI marker its manifest claims;
 * - its initial memory fits the memory quota;
 * - fuel instrumentation succeeds. The instrumented module is what the registry stores next
 *   to the original.
 */
import { instrumentFuel, InstrumentError, FUEL_IMPORT_MODULE } from '@omnirelay/runtime/sandbox/fuel.ts'
import { capMemory, MemoryCapError, pagesFor } from '@omnirelay/runtime/sandbox/memory-cap.ts'
import { readWasmImports, readWasmExports } from '@omnirelay/runtime/bundles/wasm-imports.ts'
import { checkImports } from '@omnirelay/runtime/hosts/wasm/capabilities.ts'
import type { BundleManifest } from '@omnirelay/runtime/bundles/manifest.ts'
import { BundleErrorCode } from '@omnirelay/runtime/bundles/errors.ts'
import { refusal, AdmissionStep, RegistryErrorCode } from '../errors.ts'

const KIND_NAMES = ['function', 'table', 'memory', 'global', 'tag'] as const

/** The ABI marker export each manifest ABI requires. */
const ABI_EXPORT: Record<string, string> = {
  'proxy-wasm/0.2.1': 'proxy_abi_version_0_2_1',
  'proxy-wasm/0.2.0': 'proxy_abi_version_0_2_0',
}

export interface WasmCheckResult {
  instrumented: Uint8Array
  hasStart: boolean
  imports: string[]
  memoryPages: { initial: number; maximum: number }[]
  instrumentMs: number
}

export async function checkWasm(manifest: BundleManifest, entry: Uint8Array, memoryBytes: number): Promise<WasmCheckResult> {
  const step = AdmissionStep.Module
  const imports = readWasmImports(entry)
  if (!imports) throw refusal(step, BundleErrorCode.ModuleInvalid, 'entry is not a well-formed Wasm module')
  for (const i of imports) {
    if (i.module === FUEL_IMPORT_MODULE) throw refusal(step, RegistryErrorCode.ImportNotAllowed, `import ${i.module}.${i.name} uses a reserved module`)
  }
  // The Wasm host's own import table: admission refuses exactly what a data plane could not link.
  const check = checkImports(imports.map((i) => ({ module: i.module, name: i.name, kind: KIND_NAMES[i.kind] ?? 'unknown' })))
  if (check.unknown.length > 0) {
    throw refusal(step, RegistryErrorCode.ImportNotAllowed, `imports no host provides: ${check.unknown.join(', ')}`)
  }
  const marker = ABI_EXPORT[manifest.abi]
  if (marker !== undefined && !(readWasmExports(entry) ?? []).includes(marker)) {
    throw refusal(step, RegistryErrorCode.AbiExportMissing, `manifest says ${manifest.abi} but the module does not export ${marker}`)
  }
  let memoryPages: WasmCheckResult['memoryPages']
  try {
    memoryPages = capMemory(entry, pagesFor(memoryBytes)).memories.map((m) => ({ initial: m.initial, maximum: m.maximum }))
  } catch (e) {
    if (e instanceof MemoryCapError) throw refusal(step, RegistryErrorCode.MemoryAboveQuota, e.message, { cause: e })
    throw refusal(step, BundleErrorCode.ModuleInvalid, (e as Error).message, { cause: e })
  }
  try {
    const r = await instrumentFuel(entry)
    return { instrumented: r.bytes, hasStart: r.hasStart, imports: imports.map((i) => `${i.module}.${i.name}`), memoryPages, instrumentMs: r.stats.ms }
  } catch (e) {
    if (e instanceof InstrumentError) throw refusal(step, RegistryErrorCode.InstrumentFailed, `${e.code}: ${e.message}`, { cause: e })
    throw e
  }
}

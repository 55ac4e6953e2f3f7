/**
 * Admission step 4 for Wasm bundles, beyond what bundle verification already checked (valid
 * module, imports' capabilities within the manifest's request):
 * - every import is a proxy-wasm host call the runtime knows, or a capability-free one
 *   (nothing else can be linked, so anything else is refused here rather than at load);
 * - the module exports the ABI marker its manifest claims;
 * - its initial memory fits the memory quota;
 * - fuel instrumentation succeeds. The instrumented module is what the registry stores next
 *   to the original.
 */
import { instrumentFuel, InstrumentError, FUEL_IMPORT_MODULE } from '@omnirelay/runtime/sandbox/fuel.ts'
import { capMemory, MemoryCapError, pagesFor } from '@omnirelay/runtime/sandbox/memory-cap.ts'
import { readWasmImports, readWasmExports } from '@omnirelay/runtime/bundles/wasm-imports.ts'
import { requiredCapabilities } from '@omnirelay/runtime/bundles/wasm-capabilities.ts'
import type { BundleManifest } from '@omnirelay/runtime/bundles/manifest.ts'
import { refusal, AdmissionStep, RegistryErrorCode } from '../errors.ts'

/** proxy-wasm 0.2.1 host calls that need no capability (context plumbing, time, flow control). */
const CAPABILITY_FREE = new Set([
  'proxy_get_current_time_nanoseconds',
  'proxy_set_effective_context',
  'proxy_done',
  'proxy_continue_stream',
  'proxy_close_stream',
  'proxy_continue_request',
  'proxy_continue_response',
  'proxy_get_status',
  'proxy_get_configuration',
])

/** WASI calls other proxy-wasm SDKs (Rust, Go, C++) link by default; harmless in a sandbox with no files. */
const WASI_ALLOWED = new Set(['fd_write', 'clock_time_get', 'random_get', 'environ_sizes_get', 'environ_get', 'proc_exit', 'args_sizes_get', 'args_get', 'sched_yield', 'fd_close', 'fd_seek', 'fd_fdstat_get'])

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

/** Whether an import may be linked at all (capabilities are checked separately). */
export function isLinkableImport(module: string, name: string): boolean {
  if (module === 'env') return CAPABILITY_FREE.has(name) || requiredCapabilities([{ module, name, kind: 0 }]).length > 0
  if (module === 'wasi_snapshot_preview1') return WASI_ALLOWED.has(name)
  return false
}

export async function checkWasm(manifest: BundleManifest, entry: Uint8Array, memoryBytes: number): Promise<WasmCheckResult> {
  const step = AdmissionStep.Module
  const imports = readWasmImports(entry)
  if (!imports) throw refusal(step, 'module_invalid', 'entry is not a well-formed Wasm module')
  for (const i of imports) {
    if (i.module === FUEL_IMPORT_MODULE) throw refusal(step, RegistryErrorCode.ImportNotAllowed, `import ${i.module}.${i.name} uses a reserved module`)
    if (i.kind === 0 && !isLinkableImport(i.module, i.name)) {
      throw refusal(step, RegistryErrorCode.ImportNotAllowed, `import ${i.module}.${i.name} is not a host call the runtime provides`)
    }
    if (i.kind === 1 || i.kind === 3 || i.kind === 4) throw refusal(step, RegistryErrorCode.ImportNotAllowed, `import ${i.module}.${i.name}: only functions and memory may be imported`)
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
    throw refusal(step, 'module_invalid', (e as Error).message, { cause: e })
  }
  try {
    const r = await instrumentFuel(entry)
    return { instrumented: r.bytes, hasStart: r.hasStart, imports: imports.map((i) => `${i.module}.${i.name}`), memoryPages, instrumentMs: r.stats.ms }
  } catch (e) {
    if (e instanceof InstrumentError) throw refusal(step, RegistryErrorCode.InstrumentFailed, `${e.code}: ${e.message}`, { cause: e })
    throw e
  }
}

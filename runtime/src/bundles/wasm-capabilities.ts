/**
 * The capabilities a Wasm module's imports need, from the Wasm host's own table
 * (runtime/src/hosts/wasm/capabilities.ts), so build, admission, load and the host agree on
 * one map. Imports come from our section parser: no compilation.
 */
import { checkImports } from '../hosts/wasm/capabilities.ts'
import type { Capability } from '../pipeline/filter.ts'
import { ArtifactError, BundleErrorCode } from './errors.ts'
import type { WasmImport } from './wasm-imports.ts'

const KIND_NAMES = ['function', 'table', 'memory', 'global', 'tag'] as const

/**
 * Capabilities the imports need, sorted. Throws `unknown_import` for imports no host provides
 * (such a module could never link, so it is not a valid filter).
 */
export function requiredCapabilities(imports: readonly WasmImport[]): Capability[] {
  const check = checkImports(imports.map((i) => ({ module: i.module, name: i.name, kind: KIND_NAMES[i.kind] ?? 'unknown' })))
  if (check.unknown.length > 0) {
    throw new ArtifactError(BundleErrorCode.UnknownImport, `module imports what no host provides: ${check.unknown.join(', ')}`)
  }
  return check.required
}

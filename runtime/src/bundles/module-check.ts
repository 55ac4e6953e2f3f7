/**
 * Checks that an artifact is what its manifest says: a valid module of the declared kind
 * whose imports need no capability beyond those the manifest requests. A manifest that
 * under-declares ("lies about") its capabilities is refused here, at build and at load.
 */
import type { Capability } from '../pipeline/filter.ts'
import { ArtifactError, BundleErrorCode } from './errors.ts'
import type { BundleManifest } from './manifest.ts'
import { readWasmImports, validateWasm, type WasmImport } from './wasm-imports.ts'
import { requiredCapabilities } from './wasm-capabilities.ts'

/** Capabilities a module needs, by kind. Only Wasm declares its needs statically (imports). */
export function neededCapabilities(kind: BundleManifest['kind'], bytes: Uint8Array): Capability[] {
  if (kind !== 'wasm') return []
  const imports = readWasmImports(bytes)
  if (!imports) throw new ArtifactError(BundleErrorCode.ModuleInvalid, 'entry is not a well-formed Wasm module')
  return requiredCapabilities(imports)
}

/**
 * Validates the entry artifact for the manifest's kind and returns the capabilities it needs.
 * Throws `module_invalid` or `capabilities_exceed_manifest`.
 */
export function checkModule(manifest: BundleManifest, entry: Uint8Array): Capability[] {
  if (manifest.kind === 'wasm') {
    if (!validateWasm(entry)) throw new ArtifactError(BundleErrorCode.ModuleInvalid, 'entry is not a valid Wasm module')
  } else {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(entry)
    } catch {
      throw new ArtifactError(BundleErrorCode.ModuleInvalid, `entry of a ${manifest.kind} bundle must be UTF-8 source`)
    }
  }
  const needed = neededCapabilities(manifest.kind, entry)
  const requested = new Set(manifest.capabilities)
  const extra = needed.filter((c) => !requested.has(c))
  if (extra.length > 0) {
    throw new ArtifactError(
      BundleErrorCode.CapabilitiesExceedManifest,
      `module imports need ${extra.join(', ')}, which the manifest does not request`,
    )
  }
  return needed
}

export type { WasmImport }

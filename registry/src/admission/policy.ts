/**
 * The registry's admission policy: size limits, the most a bundle may ask for, and how the
 * smoke run is budgeted. Who may sign what is the trust policy's business (bundles/trust-policy.ts).
 */
import type { FilterDefinition, Quotas } from '@omnirelay/runtime/pipeline/filter.ts'

type Kind = FilterDefinition['kind']

export interface AdmissionPolicy {
  /** Largest bundle file accepted (the upload is cut off past it). */
  maxBundleBytes: number
  /** Largest single artifact. */
  maxArtifactBytes: number
  maxManifestBytes: number
  /**
   * Upper bound on every quota a manifest declares (default and maximum), per kind: fuel units
   * differ by host (a QuickJS unit is about a thousandth of a Wasm one).
   */
  maxQuotas: Record<Kind, Required<Quotas>>
  smoke: {
    /** Wasm fuel per request (and for start/configure) when the manifest declares no default. */
    fuel: number
    /** Memory cap when the manifest declares none. */
    memoryBytes: number
    /** Wall-clock bound on one whole smoke run. */
    timeoutMs: number
    /** At most this many sample requests are run. */
    maxSamples: number
    /** `auto`: the runtime's Wasm host when it is installed, else the built-in ABI driver. */
    runner: 'auto' | 'host' | 'abi'
  }
}

export const DEFAULT_ADMISSION_POLICY: AdmissionPolicy = {
  maxBundleBytes: 16 << 20,
  maxArtifactBytes: 8 << 20,
  maxManifestBytes: 256 << 10,
  maxQuotas: {
    wasm: { fuel: 1_000_000_000, memoryBytes: 256 << 20, timeoutMs: 10_000, maxBodyBytes: 64 << 20 },
    quickjs: { fuel: 1_000_000_000_000, memoryBytes: 256 << 20, timeoutMs: 10_000, maxBodyBytes: 64 << 20 },
    native: { fuel: 1_000_000_000, memoryBytes: 256 << 20, timeoutMs: 10_000, maxBodyBytes: 64 << 20 },
  },
  smoke: { fuel: 50_000_000, memoryBytes: 32 << 20, timeoutMs: 5_000, maxSamples: 64, runner: 'auto' },
}

/** A partial policy: every field optional, down to each kind's quotas. */
export interface AdmissionPolicyInput {
  maxBundleBytes?: number
  maxArtifactBytes?: number
  maxManifestBytes?: number
  maxQuotas?: Partial<Record<Kind, Quotas>>
  smoke?: Partial<AdmissionPolicy['smoke']>
}

/** Fills a partial policy from the defaults. */
export function resolvePolicy(p: AdmissionPolicyInput = {}): AdmissionPolicy {
  const d = DEFAULT_ADMISSION_POLICY
  const q = p.maxQuotas ?? {}
  return {
    maxBundleBytes: p.maxBundleBytes ?? d.maxBundleBytes,
    maxArtifactBytes: p.maxArtifactBytes ?? d.maxArtifactBytes,
    maxManifestBytes: p.maxManifestBytes ?? d.maxManifestBytes,
    maxQuotas: {
      wasm: { ...d.maxQuotas.wasm, ...q.wasm },
      quickjs: { ...d.maxQuotas.quickjs, ...q.quickjs },
      native: { ...d.maxQuotas.native, ...q.native },
    },
    smoke: { ...d.smoke, ...p.smoke },
  }
}

/**
 * The registry's admission policy: size limits, the most a bundle may ask for, and how the
 * smoke run is budgeted. Who may sign what is the trust policy's business (bundles/trust-policy.ts).
 */
import type { Quotas } from '@omnirelay/runtime/pipeline/filter.ts'

export interface AdmissionPolicy {
  /** Largest bundle file accepted (the upload is cut off past it). */
  maxBundleBytes: number
  /** Largest single artifact. */
  maxArtifactBytes: number
  maxManifestBytes: number
  /** Upper bound on every quota a manifest declares (default and maximum). */
  maxQuotas: Required<Quotas>
  smoke: {
    /** Fuel per request (and for start/configure) when the manifest declares no default. */
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
  maxQuotas: { fuel: 1_000_000_000, memoryBytes: 256 << 20, timeoutMs: 10_000, maxBodyBytes: 64 << 20 },
  smoke: { fuel: 50_000_000, memoryBytes: 32 << 20, timeoutMs: 5_000, maxSamples: 64, runner: 'auto' },
}

/** Fills a partial policy from the defaults (nested objects merged one level deep). */
export function resolvePolicy(p: Partial<{ [K in keyof AdmissionPolicy]: Partial<AdmissionPolicy[K]> }> = {}): AdmissionPolicy {
  const d = DEFAULT_ADMISSION_POLICY
  return {
    maxBundleBytes: (p.maxBundleBytes as number | undefined) ?? d.maxBundleBytes,
    maxArtifactBytes: (p.maxArtifactBytes as number | undefined) ?? d.maxArtifactBytes,
    maxManifestBytes: (p.maxManifestBytes as number | undefined) ?? d.maxManifestBytes,
    maxQuotas: { ...d.maxQuotas, ...(p.maxQuotas as Quotas | undefined) },
    smoke: { ...d.smoke, ...(p.smoke as Partial<AdmissionPolicy['smoke']> | undefined) },
  }
}

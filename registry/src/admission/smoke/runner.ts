/** What a smoke runner gets and reports. Runners live beside this file, one per way of running. */
import type { BundleManifest } from '@omnirelay/runtime/bundles/manifest.ts'
import type { Samples } from '../samples.ts'

export interface SmokeInput {
  manifest: BundleManifest
  /** The original entry module. */
  entry: Uint8Array
  /** Wasm: the fuel-instrumented entry module (what the ABI runner instantiates). */
  instrumented?: Uint8Array
  hasStart?: boolean
  samples: Samples
  /** Budget per request (and for start + configure); absent: the host's default. */
  fuel: number | undefined
  memoryBytes: number | undefined
  timeoutMs: number
  bundle: { name: string; version: string; digest: string; signer: string }
}

export interface SmokeReport {
  /** `none`: no runner for this kind is installed (the run was skipped). */
  runner: 'abi' | 'host' | 'none'
  requests: number
  /** Most fuel any one request used (ABI runner only; the host keeps its own meter). */
  maxFuel: number | null
  localReplies: number
  ms: number
}

/** Runs the sample requests; throws a `smoke` refusal on trap, fuel, memory or time. */
export type SmokeRunner = (input: SmokeInput) => Promise<SmokeReport>

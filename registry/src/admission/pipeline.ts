/**
 * The admission pipeline: every publish runs these steps in order and stops at the first
 * refusal, which names its step and a stable code.
 *
 *   size      upload, manifest and artifacts within the registry's limits
 *   format    container well-formed, artifact digests match the manifest
 *   signature Sigstore signature by a key in the registry's trust policy, signer allowed
 *             for this name, kind, capabilities and quotas
 *   manifest  schema, semver, config schema; quotas within the registry's policy
 *   module    (wasm) validates, imports linkable and within the requested capabilities,
 *             ABI marker, memory within quota, fuel instrumentation
 *   smoke     (wasm) the sample requests (bundle's own or the default corpus) under quotas
 *
 * Nothing is stored here: the caller stores the returned blobs and metadata atomically.
 */
import { ArtifactError, BundleErrorCode } from '@omnirelay/runtime/bundles/errors.ts'
import { unpackBundle, LIMITS } from '@omnirelay/runtime/bundles/format.ts'
import { verifyBundle, type VerifiedBundle } from '@omnirelay/runtime/bundles/verify.ts'
import type { TrustPolicy } from '@omnirelay/runtime/bundles/trust-policy.ts'
import type { Quotas } from '@omnirelay/runtime/pipeline/filter.ts'
import { refusal, AdmissionStep, RegistryErrorCode, RegistryError } from '../errors.ts'
import type { AdmissionPolicy } from './policy.ts'
import { DEFAULT_CORPUS, parseSamples, SAMPLES_ARTIFACT, type Samples } from './samples.ts'
import { checkWasm } from './wasm-check.ts'
import type { SmokeReport, SmokeRunner } from './smoke/index.ts'

/** Which step a bundle verification code belongs to. */
const STEP_OF: Record<string, AdmissionStep> = {
  [BundleErrorCode.TooLarge]: AdmissionStep.Size,
  [BundleErrorCode.Truncated]: AdmissionStep.Format,
  [BundleErrorCode.Malformed]: AdmissionStep.Format,
  [BundleErrorCode.UnsupportedFormat]: AdmissionStep.Format,
  [BundleErrorCode.DigestMismatch]: AdmissionStep.Format,
  [BundleErrorCode.ArtifactMissing]: AdmissionStep.Format,
  [BundleErrorCode.ArtifactDigestMismatch]: AdmissionStep.Format,
  [BundleErrorCode.SignatureMissing]: AdmissionStep.Signature,
  [BundleErrorCode.SignatureMalformed]: AdmissionStep.Signature,
  [BundleErrorCode.SignatureInvalid]: AdmissionStep.Signature,
  [BundleErrorCode.StatementInvalid]: AdmissionStep.Signature,
  [BundleErrorCode.ManifestDigestMismatch]: AdmissionStep.Signature,
  [BundleErrorCode.SubjectMismatch]: AdmissionStep.Signature,
  [BundleErrorCode.UnknownSigner]: AdmissionStep.Signature,
  [BundleErrorCode.KeyExpired]: AdmissionStep.Signature,
  [BundleErrorCode.KeyNotYetValid]: AdmissionStep.Signature,
  [BundleErrorCode.KindNotAllowed]: AdmissionStep.Signature,
  [BundleErrorCode.NameNotAllowed]: AdmissionStep.Signature,
  [BundleErrorCode.CapabilityNotAllowed]: AdmissionStep.Signature,
  [BundleErrorCode.QuotaNotAllowed]: AdmissionStep.Signature,
  [BundleErrorCode.ManifestInvalid]: AdmissionStep.Manifest,
  [BundleErrorCode.ModuleInvalid]: AdmissionStep.Module,
  [BundleErrorCode.CapabilitiesExceedManifest]: AdmissionStep.Module,
  unknown_import: AdmissionStep.Module,
  kind_mismatch: AdmissionStep.Manifest,
}

function fromArtifactError(e: unknown, fallback: AdmissionStep): RegistryError {
  if (e instanceof RegistryError) return e
  if (e instanceof ArtifactError) return refusal(STEP_OF[e.code] ?? fallback, e.code, e.message, { status: e.code === BundleErrorCode.TooLarge ? 413 : 422, cause: e })
  return refusal(fallback, RegistryErrorCode.Internal, `unexpected failure: ${(e as Error)?.message ?? String(e)}`, { status: 500, cause: e })
}

/** What an admitted bundle brings to storage. Plain data: it crosses from the admission worker. */
export interface Admitted {
  verified: Pick<VerifiedBundle, 'digest' | 'manifestDigest' | 'manifest' | 'signer'>
  instrumented?: Uint8Array
  report: {
    /** Milliseconds per step. */
    steps: Record<string, number>
    imports?: string[]
    smoke?: SmokeReport
    samples: 'bundle' | 'default' | 'none'
  }
}

export interface AdmissionContext {
  trustPolicy: TrustPolicy
  policy: AdmissionPolicy
  smoke: SmokeRunner
  now?: Date
}

/**
 * Runs every step over one bundle file.
 *
 * @example
 * const admitted = await admitBundle(bytes, { trustPolicy, policy: DEFAULT_ADMISSION_POLICY, smoke: await selectSmokeRunner('auto') })
 */
export async function admitBundle(file: Uint8Array, ctx: AdmissionContext): Promise<Admitted> {
  const steps: Record<string, number> = {}
  let t = performance.now()
  const lap = (name: string): void => {
    const now = performance.now()
    steps[name] = Math.round((now - t) * 1000) / 1000
    t = now
  }
  const { policy } = ctx

  // 1+6. Size and structure (limits first: they are the cheapest refusal).
  if (file.length > policy.maxBundleBytes) {
    throw refusal(AdmissionStep.Size, BundleErrorCode.TooLarge, `bundle is ${file.length} bytes, limit ${policy.maxBundleBytes}`, { status: 413 })
  }
  let contents
  try {
    contents = unpackBundle(file, Math.min(policy.maxBundleBytes, LIMITS.maxBundleBytes))
  } catch (e) {
    throw fromArtifactError(e, AdmissionStep.Format)
  }
  if (contents.manifest.length > policy.maxManifestBytes) {
    throw refusal(AdmissionStep.Size, BundleErrorCode.TooLarge, `manifest is ${contents.manifest.length} bytes, limit ${policy.maxManifestBytes}`, { status: 413 })
  }
  for (const [path, data] of contents.artifacts) {
    if (data.length > policy.maxArtifactBytes) {
      throw refusal(AdmissionStep.Size, RegistryErrorCode.ArtifactTooLarge, `artifact "${path}" is ${data.length} bytes, limit ${policy.maxArtifactBytes}`, { status: 413 })
    }
  }
  lap('size')

  // 1-4 (bundle part). Digests, signature and trust, manifest, module and capabilities:
  // verifyBundle runs them all; its code says which step refused.
  let verified: VerifiedBundle
  try {
    verified = await verifyBundle(file, ctx.trustPolicy, { now: ctx.now, maxBytes: policy.maxBundleBytes })
  } catch (e) {
    throw fromArtifactError(e, AdmissionStep.Format)
  }
  lap('verify')

  // 3. Registry policy on the manifest's quotas.
  const m = verified.manifest
  for (const which of ['default', 'maximum'] as const) {
    for (const [k, v] of Object.entries(m.quotas[which]) as [keyof Quotas, number][]) {
      const limit = policy.maxQuotas[m.kind][k]
      if (v > limit) throw refusal(AdmissionStep.Manifest, RegistryErrorCode.QuotaAbovePolicy, `quotas.${which}.${k} = ${v} is above the registry's limit ${limit}`)
    }
  }
  lap('manifest')

  const own = contents.artifacts.get(SAMPLES_ARTIFACT)
  const samples: Samples = own ? parseSamples(own, policy.smoke.maxSamples) : { requests: DEFAULT_CORPUS }
  const bundle = { name: m.name, version: m.version, digest: verified.digest, signer: verified.signer.keyId }

  if (m.kind === 'native') {
    // Native code runs unsandboxed: the registry never executes it (no module step, no smoke).
    return { verified: summary(verified), report: { steps, samples: 'none' } }
  }
  if (m.kind === 'quickjs') {
    // 5. Smoke run in the QuickJS host, under the manifest's defaults (host defaults otherwise).
    const smoke = await ctx.smoke({ manifest: m, entry: verified.entry, samples, fuel: m.quotas.default.fuel, memoryBytes: m.quotas.default.memoryBytes, timeoutMs: policy.smoke.timeoutMs, bundle })
    lap('smoke')
    return { verified: summary(verified), report: { steps, smoke, samples: own ? 'bundle' : 'default' } }
  }

  // 4. Wasm module: imports, ABI, memory, fuel instrumentation.
  const memoryBytes = m.quotas.maximum.memoryBytes ?? m.quotas.default.memoryBytes ?? policy.smoke.memoryBytes
  const wasm = await checkWasm(m, verified.entry, memoryBytes)
  lap('module')

  // 5. Smoke run under the bundle's default quotas (bounded by the registry's).
  const smoke = await ctx.smoke({
    manifest: m,
    entry: verified.entry,
    instrumented: wasm.instrumented,
    hasStart: wasm.hasStart,
    samples,
    fuel: Math.min(m.quotas.default.fuel ?? policy.smoke.fuel, policy.maxQuotas.wasm.fuel),
    memoryBytes: Math.min(m.quotas.default.memoryBytes ?? memoryBytes, memoryBytes),
    timeoutMs: policy.smoke.timeoutMs,
    bundle,
  })
  lap('smoke')
  return {
    verified: summary(verified),
    instrumented: wasm.instrumented,
    report: { steps, imports: wasm.imports, smoke, samples: own ? 'bundle' : 'default' },
  }
}

function summary(v: VerifiedBundle): Admitted['verified'] {
  return { digest: v.digest, manifestDigest: v.manifestDigest, manifest: v.manifest, signer: v.signer }
}

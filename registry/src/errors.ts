/**
 * Every reason the registry refuses something, as one error class with a stable `code` and,
 * for admission refusals, the pipeline `step` that refused. Clients, tests and the audit log
 * match on codes, never on message text.
 */

/** The admission steps, in the order the pipeline runs them. Part of the API: never rename. */
export const AdmissionStep = {
  /** Size limits on the upload, manifest, artifacts (checked first: cheapest). */
  Size: 'size',
  /** Container well-formed, artifact digests match the manifest. */
  Format: 'format',
  /** Signature valid; signer allowed for this name and kind by the registry's trust policy. */
  Signature: 'signature',
  /** Manifest schema, semver, config schema, quotas within registry policy. */
  Manifest: 'manifest',
  /** Module validates, imports within capabilities, memory within quota, fuel instrumentation. */
  Module: 'module',
  /** Instantiated under quotas and run over sample requests. */
  Smoke: 'smoke',
  /** Versions are immutable: name@version already holds different content. */
  Version: 'version',
} as const
export type AdmissionStep = (typeof AdmissionStep)[keyof typeof AdmissionStep]

/** Stable registry codes (bundle codes from runtime/src/bundles/errors.ts pass through as they are). */
export const RegistryErrorCode = {
  // admission (registry-specific; bundle verification codes are reused verbatim)
  ArtifactTooLarge: 'artifact_too_large',
  ImportNotAllowed: 'import_not_allowed',
  AbiExportMissing: 'abi_export_missing',
  QuotaAbovePolicy: 'quota_above_policy',
  MemoryAboveQuota: 'memory_above_quota',
  InstrumentFailed: 'instrument_failed',
  SmokeTrap: 'smoke_trap',
  SmokeFuelExhausted: 'smoke_fuel_exhausted',
  SmokeMemoryExceeded: 'smoke_memory_exceeded',
  SmokeTimeout: 'smoke_timeout',
  SmokeInstantiateFailed: 'smoke_instantiate_failed',
  /** The filter refused its configuration (the samples' `config`, or none): it could not load anywhere. */
  SmokeConfigureRejected: 'smoke_configure_rejected',
  /** The admission worker was stopped at its hard wall-clock limit. */
  AdmissionTimeout: 'admission_timeout',
  SamplesInvalid: 'samples_invalid',
  VersionExists: 'version_exists',
  SignerRevoked: 'signer_revoked',
  DigestRevoked: 'digest_revoked',
  // api
  Unauthorized: 'unauthorized',
  Forbidden: 'forbidden',
  NotFound: 'not_found',
  BadRequest: 'bad_request',
  Revoked: 'revoked',
  // storage and life cycle
  StorageCorrupt: 'storage_corrupt',
  Closed: 'closed',
  /** A bug or an environment failure; the message says what. Never a refusal of the bundle. */
  Internal: 'internal',
} as const
export type RegistryErrorCode = (typeof RegistryErrorCode)[keyof typeof RegistryErrorCode]

/**
 * A refusal or failure. `status` is the HTTP status the API answers with; `step` is set for
 * admission refusals.
 *
 * @example
 * try { await registry.publish(bytes, actor) } catch (e) {
 *   if (e instanceof RegistryError && e.step === 'smoke') console.log('filter traps:', e.code)
 * }
 */
export class RegistryError extends Error {
  readonly code: string
  readonly status: number
  readonly step: AdmissionStep | undefined
  constructor(code: string, message: string, opts: { status?: number; step?: AdmissionStep; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'RegistryError'
    this.code = code
    this.status = opts.status ?? 400
    this.step = opts.step
  }

  /** The JSON body the API sends for this error. */
  toJSON(): { error: { code: string; message: string; step?: AdmissionStep } } {
    return { error: this.step ? { code: this.code, step: this.step, message: this.message } : { code: this.code, message: this.message } }
  }
}

/** An admission refusal: always names its step; the API answers 422 unless said otherwise. */
export function refusal(step: AdmissionStep, code: string, message: string, opts: { status?: number; cause?: unknown } = {}): RegistryError {
  return new RegistryError(code, message, { status: opts.status ?? 422, step, cause: opts.cause })
}

/**
 * Every reason the host refuses a filter artifact or a bundle, as one error class with a
 * stable `code`. Tests, metrics and operators match on the code, never on message text.
 */

/** Stable failure codes. The values are part of the public contract: never rename one. */
export const BundleErrorCode = {
  // definition / unsigned path
  NoArtifact: 'no_artifact',
  UnsignedRefused: 'unsigned_refused',
  ReadFailed: 'read_failed',
  // container format
  TooLarge: 'bundle_too_large',
  Truncated: 'bundle_truncated',
  Malformed: 'bundle_malformed',
  UnsupportedFormat: 'bundle_unsupported_format',
  DigestMismatch: 'bundle_digest_mismatch',
  DigestRequired: 'bundle_digest_required',
  // manifest
  ManifestInvalid: 'manifest_invalid',
  KindMismatch: 'kind_mismatch',
  ArtifactMissing: 'artifact_missing',
  ArtifactDigestMismatch: 'artifact_digest_mismatch',
  ModuleInvalid: 'module_invalid',
  UnknownImport: 'unknown_import',
  CapabilitiesExceedManifest: 'capabilities_exceed_manifest',
  // signature
  SignatureMissing: 'signature_missing',
  SignatureMalformed: 'signature_malformed',
  SignatureInvalid: 'signature_invalid',
  StatementInvalid: 'statement_invalid',
  ManifestDigestMismatch: 'manifest_digest_mismatch',
  SubjectMismatch: 'subject_mismatch',
  // trust policy
  PolicyInvalid: 'policy_invalid',
  PolicyMissing: 'policy_missing',
  UnknownSigner: 'unknown_signer',
  KeyExpired: 'key_expired',
  KeyNotYetValid: 'key_not_yet_valid',
  KindNotAllowed: 'kind_not_allowed',
  NameNotAllowed: 'name_not_allowed',
  CapabilityNotAllowed: 'capability_not_allowed',
  QuotaNotAllowed: 'quota_not_allowed',
  // config against bundle
  CapabilitiesNotGranted: 'capabilities_not_granted',
  QuotaExceedsMaximum: 'quota_exceeds_maximum',
  ConfigInvalid: 'filter_config_invalid',
  NativeDirUnsafe: 'native_dir_unsafe',
  // revocation (the registry's list, polled by the node)
  BundleRevoked: 'bundle_revoked',
  SignerRevoked: 'signer_revoked',
  // keys and tooling
  KeyInvalid: 'key_invalid',
  BuildFailed: 'build_failed',
} as const
export type BundleErrorCode = (typeof BundleErrorCode)[keyof typeof BundleErrorCode]

/**
 * Raised for every refused artifact or bundle. `code` says why; the message adds detail for
 * humans. Never carries secrets (no key material, no file contents).
 *
 * @example
 * try { await loadArtifact(def, opts) } catch (e) {
 *   if (e instanceof ArtifactError && e.code === BundleErrorCode.SignatureInvalid) alarm()
 * }
 */
export class ArtifactError extends Error {
  readonly code: string
  /** Tooling only (`build_failed`): the compiler's own output, for the filter's author. */
  readonly diagnostics: string | undefined
  constructor(code: BundleErrorCode | string, message: string, options?: { cause?: unknown; diagnostics?: string }) {
    super(message, options)
    this.name = 'ArtifactError'
    this.code = code
    this.diagnostics = options?.diagnostics || undefined
  }
}

/** Shorthand used by the bundle modules. */
export function fail(code: BundleErrorCode, message: string, cause?: unknown): never {
  throw new ArtifactError(code, message, cause === undefined ? undefined : { cause })
}

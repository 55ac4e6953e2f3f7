/**
 * Signed extension bundles: the format, manifest, keys, signing, trust policy, verification
 * and loading. See docs/bundle-format.md and docs/trust-policy.md.
 */
export { ArtifactError, BundleErrorCode } from './errors.ts'
export { packBundle, unpackBundle, BUNDLE_EXTENSION, type BundleContents } from './format.ts'
export { parseManifest, validateManifest, serializeManifest, MANIFEST_SCHEMA, type BundleManifest } from './manifest.ts'
export { generateSigningKey, readSigningKey, parseSigningKey, writeKeyFiles, keyFingerprint, type SigningKey, type KeyAlgorithm } from './keys.ts'
export { signBundle } from './sign.ts'
export { verifyBundle, type VerifiedBundle, type VerifyOptions } from './verify.ts'
export {
  compileTrustPolicy,
  loadTrustPolicy,
  TRUST_POLICY_SCHEMA,
  type TrustPolicy,
  type TrustPolicyDocument,
} from './trust-policy.ts'
export { buildBundle, type BuildInput, type BuildResult } from './build.ts'
export { loadArtifact, type LoadArtifactOptions, type BundleArtifact } from './load-artifact.ts'
export { announceUnsignedMode, recordUnsignedLoad, UNSIGNED_MODE_METRIC, UNSIGNED_LOADED_METRIC, UNSIGNED_WARNING } from './unsigned-mode.ts'
export { sha256Digest, normalizeDigest } from './digest.ts'
export { RevocationList, type RevocationCheck, type RevocationSnapshot } from './revocation-list.ts'
export { RevocationPoller, pollerForConfig, type RevocationPollerOptions, type RevocationFetch, REVOKED_METRIC, REVOCATION_AGE_METRIC, REVOCATION_POLLS_METRIC } from './revocation-poller.ts'
export { readRevocations, writeRevocations } from './revocation-store.ts'
export { findRevokedFilters, type RevokedFilters } from './revoked-filters.ts'

/**
 * Verifies a bundle file against a trust policy, offline: container structure, pinned
 * digest, Sigstore signature by a trusted key inside its validity window, the signed
 * statement's subjects against the bytes present, the manifest, the publisher's allowances
 * and the module's imports. Every refusal is an ArtifactError with a stable code.
 */
import { bundleFromJSON, type Bundle } from '@sigstore/bundle'
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify'
import type { Capability, Quotas } from '../pipeline/filter.ts'
import { normalizeDigest, sha256Digest } from './digest.ts'
import { ArtifactError, BundleErrorCode } from './errors.ts'
import { unpackBundle, type BundleContents } from './format.ts'
import { checkArtifactsMatchManifest, parseManifest, type BundleManifest } from './manifest.ts'
import { checkModule } from './module-check.ts'
import { checkStatement, type BundleStatement } from './statement.ts'
import {
  checkKeyWindow,
  checkPublisherAllows,
  keyValidAt,
  trustedKeyFor,
  type TrustPolicy,
  type TrustedKey,
} from './trust-policy.ts'

const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json'
const TRUSTED_ROOT_MEDIA_TYPE = 'application/vnd.dev.sigstore.trustedroot+json;version=0.1'

export interface VerifyOptions {
  /** Pinned `sha256:<hex>` (or bare hex) of the whole file, e.g. from config. */
  expectedDigest?: string
  /** Verification time for key validity windows. Default: now. */
  now?: Date
  /** Largest bundle file accepted, in bytes. */
  maxBytes?: number
}

/** A bundle that passed every check. */
export interface VerifiedBundle {
  /** `sha256:<hex>` of the whole file: the bundle's content address. */
  digest: string
  /** `sha256:<hex>` of the manifest bytes. */
  manifestDigest: string
  manifest: BundleManifest
  contents: BundleContents
  /** The entry artifact's bytes. */
  entry: Uint8Array
  signer: { keyId: string; publisher: string; fingerprint: string }
  statement: BundleStatement
  /** Capabilities the module's imports need (Wasm; empty for other kinds). */
  neededCapabilities: Capability[]
  /** The manifest's maximum quotas narrowed by the publisher's. */
  maxQuotas: Quotas
}

// One Verifier per compiled policy: trust material is built once, not per bundle.
const verifiers = new WeakMap<TrustPolicy, Verifier>()

function verifierFor(policy: TrustPolicy): Verifier {
  let v = verifiers.get(policy)
  if (!v) {
    const root = { mediaType: TRUSTED_ROOT_MEDIA_TYPE, tlogs: [], ctlogs: [], certificateAuthorities: [], timestampAuthorities: [] }
    const material = toTrustMaterial(root as unknown as Parameters<typeof toTrustMaterial>[0], (hint: string) => {
      const key: TrustedKey = trustedKeyFor(policy, hint)
      return { publicKey: key.publicKey, validFor: (d: Date) => keyValidAt(key, d) }
    })
    // Publisher keys sign offline: no transparency log, no CT log, no timestamp authority.
    v = new Verifier(material, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 })
    verifiers.set(policy, v)
  }
  return v
}

function parseSigstoreBundle(bytes: Uint8Array): Bundle {
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.SignatureMalformed, 'signature entry is not JSON', { cause: e })
  }
  let bundle: Bundle
  try {
    bundle = bundleFromJSON(json)
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.SignatureMalformed, 'signature entry is not a Sigstore bundle', { cause: e })
  }
  if (bundle.mediaType !== BUNDLE_V03) {
    throw new ArtifactError(BundleErrorCode.SignatureMalformed, `Sigstore bundle media type must be ${BUNDLE_V03}`)
  }
  if (bundle.content.$case !== 'dsseEnvelope') {
    throw new ArtifactError(BundleErrorCode.SignatureMalformed, 'Sigstore bundle must hold a DSSE envelope')
  }
  if (bundle.content.dsseEnvelope.signatures.length !== 1) {
    throw new ArtifactError(BundleErrorCode.SignatureMalformed, 'DSSE envelope must hold exactly one signature')
  }
  return bundle
}

/** The key id hint the bundle claims, or a refusal for signers this host cannot trust yet. */
function signerHint(bundle: Bundle): string {
  const vm = bundle.verificationMaterial.content
  if (vm.$case === 'publicKey') return vm.publicKey.hint
  throw new ArtifactError(BundleErrorCode.UnknownSigner, 'certificate-based signers (CA identities) are not supported yet')
}

/**
 * Verifies a bundle file. Returns what was verified; throws ArtifactError otherwise.
 *
 * @example
 * const policy = await loadTrustPolicy('trust-policy.yaml')
 * const v = await verifyBundle(await readFile('filter.orb'), policy, { expectedDigest: 'sha256:…' })
 * console.log(v.manifest.name, v.signer.publisher)
 */
export async function verifyBundle(file: Uint8Array, policy: TrustPolicy, opts: VerifyOptions = {}): Promise<VerifiedBundle> {
  const now = opts.now ?? new Date()
  const contents = unpackBundle(file, opts.maxBytes)
  const digest = sha256Digest(file)
  if (opts.expectedDigest !== undefined) {
    const want = normalizeDigest(opts.expectedDigest)
    if (!want) throw new ArtifactError(BundleErrorCode.DigestMismatch, `pinned digest "${opts.expectedDigest}" is not a sha256 digest`)
    if (want !== digest) throw new ArtifactError(BundleErrorCode.DigestMismatch, `bundle digest ${digest} is not the pinned ${want}`)
  }
  if (!contents.signature) throw new ArtifactError(BundleErrorCode.SignatureMissing, 'bundle is not signed')

  const bundle = parseSigstoreBundle(contents.signature)
  const key = trustedKeyFor(policy, signerHint(bundle))
  checkKeyWindow(key, now)
  try {
    verifierFor(policy).verify(toSignedEntity(bundle))
  } catch (e) {
    if (e instanceof ArtifactError) throw e
    throw new ArtifactError(BundleErrorCode.SignatureInvalid, `signature does not verify with key "${key.keyId}"`, { cause: e })
  }
  if (bundle.content.$case !== 'dsseEnvelope') throw new ArtifactError(BundleErrorCode.SignatureMalformed, 'no DSSE envelope')
  const envelope = bundle.content.dsseEnvelope
  const statement = checkStatement(envelope.payloadType, envelope.payload, contents)

  const manifest = parseManifest(contents.manifest)
  const p = statement.predicate
  if (p.name !== manifest.name || p.version !== manifest.version || p.kind !== manifest.kind) {
    throw new ArtifactError(BundleErrorCode.StatementInvalid, 'signed name/version/kind differ from the manifest')
  }
  checkArtifactsMatchManifest(contents.artifacts, manifest.artifacts)
  const maxQuotas = checkPublisherAllows(key.publisher, manifest)
  const entry = contents.artifacts.get(manifest.entry) as Uint8Array
  const neededCapabilities = checkModule(manifest, entry)
  return {
    digest,
    manifestDigest: sha256Digest(contents.manifest),
    manifest,
    contents,
    entry,
    signer: { keyId: key.keyId, publisher: key.publisher.name, fingerprint: key.fingerprint },
    statement,
    neededCapabilities,
    maxQuotas,
  }
}

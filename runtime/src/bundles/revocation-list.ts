/**
 * The revocations a node knows: digests of revoked bundle files and revoked signer key ids,
 * as the registry publishes them at `GET /v1/revocations`. The loader consults it before any
 * bundle loads; the poller replaces its contents when the registry's serial moves.
 */
import { ArtifactError, BundleErrorCode } from './errors.ts'
import { normalizeDigest } from './digest.ts'

/** The list as the registry serves it, plus when this node last heard it confirmed. */
export interface RevocationSnapshot {
  /** The registry's serial: only grows. */
  serial: number
  /** `sha256:<hex>` digests of revoked bundle files. */
  digests: string[]
  /** Revoked signer key ids. */
  signers: string[]
  /** The registry's ETag for this list, for conditional polls. */
  etag?: string
  /** When the registry last confirmed this list (ISO time; a 200 or a 304). */
  confirmedAt?: string
}

/**
 * What `loadArtifact` asks. Kept to one method so the xDS layer or a test can pass any
 * source of truth.
 */
export interface RevocationCheck {
  /** The refusal code for this bundle, or undefined when neither the bundle nor its signer is revoked. */
  check(bundleDigest: string, signerKeyId: string): typeof BundleErrorCode.BundleRevoked | typeof BundleErrorCode.SignerRevoked | undefined
}

/**
 * @example
 * const list = new RevocationList()
 * list.replace({ serial: 3, digests: ['sha256:…'], signers: ['acme-2024'] })
 * list.check(artifact.bundle.digest, artifact.signerKey.keyId) // 'bundle_revoked' | 'signer_revoked' | undefined
 */
export class RevocationList implements RevocationCheck {
  #digests = new Set<string>()
  #signers = new Set<string>()
  #serial = -1
  #etag: string | undefined
  #confirmedAt: number | undefined

  /** -1 until a list was loaded or fetched. */
  get serial(): number {
    return this.#serial
  }
  get etag(): string | undefined {
    return this.#etag
  }
  /** Epoch ms of the last confirmation by the registry (or of the persisted list's), if any. */
  get confirmedAt(): number | undefined {
    return this.#confirmedAt
  }
  get digestCount(): number {
    return this.#digests.size
  }
  get signerCount(): number {
    return this.#signers.size
  }

  check(bundleDigest: string, signerKeyId: string): typeof BundleErrorCode.BundleRevoked | typeof BundleErrorCode.SignerRevoked | undefined {
    if (this.#digests.size && this.#digests.has(normalizeDigest(bundleDigest) ?? bundleDigest)) return BundleErrorCode.BundleRevoked
    if (this.#signers.size && this.#signers.has(signerKeyId)) return BundleErrorCode.SignerRevoked
    return undefined
  }

  /**
   * Takes a list from the registry (or from disk). A list with a lower serial than the one held
   * is ignored: revocations never roll back because an old copy or a restored registry answered.
   * @returns whether the revoked set changed
   */
  replace(snap: RevocationSnapshot): boolean {
    if (snap.serial < this.#serial) return false
    const digests = new Set<string>()
    for (const d of snap.digests) digests.add(normalizeDigest(d) ?? d)
    const signers = new Set(snap.signers)
    const changed = !sameSet(digests, this.#digests) || !sameSet(signers, this.#signers)
    this.#digests = digests
    this.#signers = signers
    this.#serial = snap.serial
    this.#etag = snap.etag
    if (snap.confirmedAt !== undefined) this.confirm(Date.parse(snap.confirmedAt))
    return changed
  }

  /** The registry answered (200 or 304) at `at`. */
  confirm(at = Date.now()): void {
    if (Number.isFinite(at)) this.#confirmedAt = at
  }

  snapshot(): RevocationSnapshot {
    const out: RevocationSnapshot = { serial: this.#serial, digests: [...this.#digests].sort(), signers: [...this.#signers].sort() }
    if (this.#etag !== undefined) out.etag = this.#etag
    if (this.#confirmedAt !== undefined) out.confirmedAt = new Date(this.#confirmedAt).toISOString()
    return out
  }
}

/** Throws the revocation refusal for a verified bundle, if any. */
export function assertNotRevoked(list: RevocationCheck | undefined, filter: string, bundleDigest: string, signerKeyId: string): void {
  const code = list?.check(bundleDigest, signerKeyId)
  if (code === undefined) return
  const what = code === BundleErrorCode.BundleRevoked ? `bundle ${bundleDigest} is revoked` : `signer "${signerKeyId}" is revoked`
  throw new ArtifactError(code, `filter "${filter}": ${what} by the registry`)
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  if (a.size !== b.size) return false
  for (const x of a) if (!b.has(x)) return false
  return true
}

/** Stable codes for what the data plane refuses to apply (they travel in the NACK's error_detail). */
export const ApplyErrorCode = {
  /** The registry did not answer the bundle (network, status). */
  BundleFetchFailed: 'bundle_fetch_failed',
  /** The registry answered other bytes than the pinned digest. */
  BundleDigestMismatch: 'bundle_digest_mismatch',
  /** The bundle is larger than the data plane accepts. */
  BundleTooLarge: 'bundle_too_large',
  /** The snapshot has no listener: nothing could serve. */
  NoListeners: 'no_listeners',
  /** The last-known-good file is unreadable or invalid. */
  LkgInvalid: 'lkg_invalid',
} as const
export type ApplyErrorCode = (typeof ApplyErrorCode)[keyof typeof ApplyErrorCode]

export class ApplyError extends Error {
  constructor(
    readonly code: ApplyErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'ApplyError'
  }
}

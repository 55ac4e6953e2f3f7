/** One class per failure, with a stable code. */
export const CacheErrorCode = {
  SnapshotInconsistent: 'XDS_SNAPSHOT_INCONSISTENT',
  EpochNotIncreasing: 'XDS_EPOCH_NOT_INCREASING',
  DuplicateResource: 'XDS_DUPLICATE_RESOURCE',
} as const
export type CacheErrorCode = (typeof CacheErrorCode)[keyof typeof CacheErrorCode]

export class XdsCacheError extends Error {
  constructor(
    readonly code: CacheErrorCode,
    message: string,
    readonly details: readonly string[] = [],
  ) {
    super(message)
    this.name = 'XdsCacheError'
  }
}

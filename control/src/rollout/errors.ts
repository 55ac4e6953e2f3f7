/** Stable codes for rollout failures (API maps them to HTTP statuses). */
export const RolloutErrorCode = {
  /** The spec does not validate (steps, thresholds, versions). 422. */
  Invalid: 'rollout_invalid',
  NotFound: 'rollout_not_found',
  /** Another rollout of the same filter slot is still active. 409. */
  Conflict: 'rollout_conflict',
  /** The action does not apply in the rollout's state (e.g. resume a running rollout). 409. */
  BadState: 'rollout_bad_state',
  /** Rollback target is not one of the slot's last N versions. 422. */
  UnknownVersion: 'rollout_unknown_version',
  /** Central refused to publish the change (validation); the rollout did not move. 502. */
  PublishFailed: 'rollout_publish_failed',
} as const
export type RolloutErrorCode = (typeof RolloutErrorCode)[keyof typeof RolloutErrorCode]

const STATUS: Record<RolloutErrorCode, number> = {
  rollout_invalid: 422,
  rollout_not_found: 404,
  rollout_conflict: 409,
  rollout_bad_state: 409,
  rollout_unknown_version: 422,
  rollout_publish_failed: 502,
}

export class RolloutError extends Error {
  readonly status: number
  constructor(
    readonly code: RolloutErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'RolloutError'
    this.status = STATUS[code]
  }
}

/** Stable codes for central's API failures. */
import type { ConfigIssue } from '@omnirelay/runtime/config/errors.ts'

export const CentralErrorCode = {
  /** The change would not validate: `issues` name each problem by path. 422. */
  ConfigInvalid: 'config_invalid',
  NotFound: 'not_found',
  BadRequest: 'bad_request',
  /** The name in the path and the body differ. */
  NameMismatch: 'name_mismatch',
  MethodNotAllowed: 'method_not_allowed',
  BodyTooLarge: 'body_too_large',
  Internal: 'internal',
} as const
export type CentralErrorCode = (typeof CentralErrorCode)[keyof typeof CentralErrorCode]

const STATUS: Record<CentralErrorCode, number> = {
  config_invalid: 422,
  not_found: 404,
  bad_request: 400,
  name_mismatch: 400,
  method_not_allowed: 405,
  body_too_large: 413,
  internal: 500,
}

export class CentralError extends Error {
  readonly status: number
  constructor(
    readonly code: CentralErrorCode,
    message: string,
    readonly issues: readonly ConfigIssue[] = [],
  ) {
    super(message)
    this.name = 'CentralError'
    this.status = STATUS[code]
  }
}

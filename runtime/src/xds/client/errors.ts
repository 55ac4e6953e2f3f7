/** Stable codes for the xDS client. */
export const XdsClientErrorCode = {
  /** The apply callback rejected an update; the client NACKed it. */
  Rejected: 'XDS_UPDATE_REJECTED',
  Closed: 'XDS_CLIENT_CLOSED',
  BadOptions: 'XDS_CLIENT_BAD_OPTIONS',
} as const
export type XdsClientErrorCode = (typeof XdsClientErrorCode)[keyof typeof XdsClientErrorCode]

export class XdsClientError extends Error {
  constructor(
    readonly code: XdsClientErrorCode,
    message: string,
  ) {
    super(message)
    this.name = 'XdsClientError'
  }
}

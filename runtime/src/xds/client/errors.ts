/** Stable codes for the xDS client. */
export const XdsClientErrorCode = {
  /** The apply callback rejected an update; the client NACKed it. */
  Rejected: 'XDS_UPDATE_REJECTED',
  Closed: 'XDS_CLIENT_CLOSED',
  BadOptions: 'XDS_CLIENT_BAD_OPTIONS',
  /** The bootstrap file is unreadable or malformed; the message names the field. */
  BootstrapInvalid: 'XDS_BOOTSTRAP_INVALID',
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

/**
 * What a header a filter sets must look like, for every extension host (Wasm, QuickJS,
 * native): the one rule, so a filter's header fails at its own call, with its own error,
 * never later on the wire as the client's or the upstream's fault.
 *
 * @example
 * if (!HEADER_NAME.test(name) || BAD_HEADER_VALUE.test(value)) throw new Error('invalid header')
 */

/** A lower-case field name (an RFC 9110 token), or a pseudo-header (`:path`). Source of HEADER_NAME without anchors. */
export const HEADER_NAME_PATTERN = ":?[!#$%&'*+\\-.^_`|~0-9a-z]+"
export const HEADER_NAME = new RegExp(`^${HEADER_NAME_PATTERN}$`)

/**
 * Characters never valid in a header value, as a character-class body: control characters
 * but HTAB, DEL (RFC 9110 §5.5), and anything above U+00FF, which node (one byte per
 * character on the wire) refuses to send.
 */
export const HEADER_VALUE_FORBIDDEN = '\\u0000-\\u0008\\u000a-\\u001f\\u007f\\u0100-\\uffff'
export const BAD_HEADER_VALUE = new RegExp(`[${HEADER_VALUE_FORBIDDEN}]`)

/** sha256 digests as the bundle format writes them: `sha256:<64 lowercase hex>`. */
import { createHash } from 'node:crypto'

export const DIGEST_PREFIX = 'sha256:'
const HEX64 = /^[0-9a-f]{64}$/

/** sha256 of `bytes` as bare lowercase hex. */
export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** sha256 of `bytes` as `sha256:<hex>`. */
export function sha256Digest(bytes: Uint8Array | string): string {
  return DIGEST_PREFIX + sha256Hex(bytes)
}

/**
 * Normalizes a digest written in config or on a command line: `sha256:<hex>` or bare hex,
 * any case. Returns undefined when it is not a sha256 digest.
 */
export function normalizeDigest(text: string): string | undefined {
  const hex = (text.startsWith(DIGEST_PREFIX) ? text.slice(DIGEST_PREFIX.length) : text).toLowerCase()
  return HEX64.test(hex) ? DIGEST_PREFIX + hex : undefined
}

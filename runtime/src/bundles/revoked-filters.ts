/**
 * Which filters of a running config the revocation list now covers. Used when the list
 * changes, to decide whether the running config must be rebuilt and which filters to take
 * out. Identity comes from the config's digest pin (or the file's hash) and the signature's
 * key id hint: for a bundle that loaded, the hint is the key that verified it, since the
 * verifier looks the key up by that hint.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FilterDefinition } from '../pipeline/filter.ts'
import { normalizeDigest, sha256Digest } from './digest.ts'
import { unpackBundle } from './format.ts'
import type { RevocationCheck } from './revocation-list.ts'

/** Filter name -> `bundle_revoked` | `signer_revoked`. */
export type RevokedFilters = ReadonlyMap<string, string>

/**
 * @example
 * const revoked = await findRevokedFilters(cfg.filters, cfg.baseDir, list)
 * if (revoked.size) await proxy.rebuildWithout(revoked)
 */
export async function findRevokedFilters(filters: readonly FilterDefinition[], baseDir: string, list: RevocationCheck): Promise<RevokedFilters> {
  const out = new Map<string, string>()
  await Promise.all(
    filters.map(async (def) => {
      if (!def.bundle) return
      const pinned = def.bundle.digest !== undefined ? normalizeDigest(def.bundle.digest) : undefined
      const bytes = await readFile(def.bundle.path.startsWith('file:') ? fileURLToPath(def.bundle.path) : resolve(baseDir, def.bundle.path)).catch(() => undefined)
      const digest = pinned ?? (bytes ? sha256Digest(bytes) : undefined)
      const code = list.check(digest ?? '', bytes ? signerHint(bytes) : '')
      if (code !== undefined) out.set(def.name, code)
    }),
  )
  return out
}

function signerHint(bytes: Uint8Array): string {
  try {
    const sig = unpackBundle(bytes).signature
    if (!sig) return ''
    const hint = JSON.parse(new TextDecoder().decode(sig))?.verificationMaterial?.publicKey?.hint
    return typeof hint === 'string' ? hint : ''
  } catch {
    return ''
  }
}

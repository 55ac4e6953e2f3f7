/**
 * The revocation list on disk, next to the node's data, so a node restarted while the
 * registry is unreachable still refuses what it knew was revoked. Written whole via a temp
 * file and rename: a reader sees the old list or the new one, never half of one.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { RevocationSnapshot } from './revocation-list.ts'

/**
 * Reads a persisted list. A missing file is no list (undefined); a damaged one throws, so the
 * caller can say so loudly rather than start believing nothing is revoked.
 *
 * @example
 * const snap = await readRevocations('/var/lib/omnirelay/revocations.json')
 * if (snap) list.replace(snap)
 */
export async function readRevocations(file: string): Promise<RevocationSnapshot | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
  const v = JSON.parse(text) as Partial<RevocationSnapshot>
  if (typeof v.serial !== 'number' || !isStrings(v.digests) || !isStrings(v.signers)) throw new Error(`${file}: not a revocation list`)
  const out: RevocationSnapshot = { serial: v.serial, digests: v.digests, signers: v.signers }
  if (typeof v.etag === 'string') out.etag = v.etag
  if (typeof v.confirmedAt === 'string') out.confirmedAt = v.confirmedAt
  return out
}

/** Writes the list atomically (several worker processes may write the same file). */
export async function writeRevocations(file: string, snap: RevocationSnapshot): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`
  await writeFile(tmp, JSON.stringify(snap, null, 2) + '\n', { mode: 0o600 })
  await rename(tmp, file)
}

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string')
}

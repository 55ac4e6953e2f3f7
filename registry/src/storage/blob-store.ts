/**
 * Content-addressed blob directory: `<root>/sha256/<2 hex>/<64 hex>`. Writes are atomic —
 * temp file in `<root>/tmp`, fsync, rename into place, fsync the directory — so a blob path
 * either does not exist or holds exactly the bytes of its digest, whatever crashes when.
 * Blobs a crash left without a metadata row are removed by `collectGarbage` at start.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream, type ReadStream } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { sha256Digest } from '@omnirelay/runtime/bundles/digest.ts'
import { RegistryError, RegistryErrorCode } from '../errors.ts'

const DIGEST = /^sha256:([0-9a-f]{64})$/
/** Blobs up to this size are served from memory; larger ones stream from disk. */
const MAX_CACHED_BLOB = 1 << 20

export class BlobStore {
  readonly root: string
  readonly #tmp: string
  readonly #cache = new Map<string, Uint8Array>()
  readonly #cacheBudget: number
  #cachedBytes = 0

  /** `cacheBytes`: memory for small blobs served often (default 64 MiB; 0 disables). */
  constructor(root: string, cacheBytes = 64 << 20) {
    this.root = root
    this.#tmp = join(root, 'tmp')
    this.#cacheBudget = cacheBytes
  }

  async init(): Promise<void> {
    await mkdir(join(this.root, 'sha256'), { recursive: true })
    await mkdir(this.#tmp, { recursive: true })
  }

  /** Path of a blob (whether or not it exists); throws for anything but a sha256 digest. */
  pathOf(digest: string): string {
    const m = DIGEST.exec(digest)
    if (!m) throw new RegistryError(RegistryErrorCode.BadRequest, `not a sha256 digest: ${digest}`)
    const hex = m[1] as string
    return join(this.root, 'sha256', hex.slice(0, 2), hex)
  }

  /**
   * Stores `bytes` and returns their digest. Idempotent: an existing blob is left alone
   * (same digest, same bytes).
   */
  async put(bytes: Uint8Array): Promise<string> {
    const digest = sha256Digest(bytes)
    const target = this.pathOf(digest)
    if (await exists(target)) return digest
    const dir = join(target, '..')
    await mkdir(dir, { recursive: true })
    const tmp = join(this.#tmp, `${digest.slice(7, 23)}.${randomBytes(6).toString('hex')}`)
    const fh = await open(tmp, 'wx', 0o644)
    try {
      await fh.writeFile(bytes)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, target)
    await syncDir(dir)
    return digest
  }

  async has(digest: string): Promise<boolean> {
    return exists(this.pathOf(digest))
  }

  async read(digest: string): Promise<Uint8Array> {
    return new Uint8Array(await readFile(this.pathOf(digest)))
  }

  /**
   * A blob for sending: small blobs come from a memory cache (immutable content makes caching
   * trivially correct), verified against their digest when first read, so a corrupted disk
   * is never served; large ones stream from disk. Undefined when absent.
   */
  async open(digest: string): Promise<{ size: number; bytes?: Uint8Array; stream: () => ReadStream } | undefined> {
    const path = this.pathOf(digest)
    const stream = () => createReadStream(path, { highWaterMark: 256 * 1024 })
    const hit = this.#cache.get(digest)
    if (hit) {
      // Refresh its place in the LRU order.
      this.#cache.delete(digest)
      this.#cache.set(digest, hit)
      return { size: hit.length, bytes: hit, stream }
    }
    let size: number
    try {
      size = (await stat(path)).size
    } catch {
      return undefined
    }
    if (size > MAX_CACHED_BLOB) return { size, stream }
    const bytes = new Uint8Array(await readFile(path))
    if (sha256Digest(bytes) !== digest) throw new RegistryError(RegistryErrorCode.StorageCorrupt, `blob ${digest} is corrupt on disk`, { status: 500 })
    this.#cache.set(digest, bytes)
    this.#cachedBytes += bytes.length
    for (const [d, b] of this.#cache) {
      if (this.#cachedBytes <= this.#cacheBudget) break
      this.#cache.delete(d)
      this.#cachedBytes -= b.length
    }
    return { size, bytes, stream }
  }

  /**
   * Removes temp files and every blob whose digest `isReferenced` denies. Run at start,
   * before any publish, so an in-flight publish's fresh blobs are never collected.
   */
  async collectGarbage(isReferenced: (digest: string) => boolean): Promise<{ removed: string[]; tempFiles: number }> {
    const tempFiles = (await readdir(this.#tmp)).length
    await rm(this.#tmp, { recursive: true, force: true })
    await mkdir(this.#tmp, { recursive: true })
    const removed: string[] = []
    const base = join(this.root, 'sha256')
    for (const prefix of await readdir(base)) {
      for (const hex of await readdir(join(base, prefix))) {
        const digest = `sha256:${hex}`
        if (!DIGEST.test(digest) || !isReferenced(digest)) {
          await rm(join(base, prefix, hex), { force: true })
          removed.push(digest)
        }
      }
    }
    return { removed, tempFiles }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

/** fsync a directory so a rename into it survives a power cut. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

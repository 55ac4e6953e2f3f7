/**
 * Bundles fetched from the registry by digest, kept on disk under their digest. A cached file
 * is used only if its bytes still hash to the digest; fetched bytes are checked before they are
 * written (tmp + rename), so a file under a digest name always holds that digest. The
 * signature is verified later, by the loader, against the node's trust policy.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sha256Digest } from '../../bundles/digest.ts'
import type { MeshBundle } from '../mapping/mesh-config.ts'
import { ApplyError, ApplyErrorCode } from './errors.ts'

export interface BundleStoreOptions {
  /** Largest bundle fetched, in bytes. Default 64 MiB. */
  maxBytes?: number
  /** Per-fetch time limit. Default 30 s. */
  timeoutMs?: number
}

export class BundleStore {
  readonly dir: string
  readonly #maxBytes: number
  readonly #timeoutMs: number
  readonly #inflight = new Map<string, Promise<string>>()

  constructor(dir: string, opts: BundleStoreOptions = {}) {
    this.dir = dir
    this.#maxBytes = opts.maxBytes ?? 64 << 20
    this.#timeoutMs = opts.timeoutMs ?? 30_000
  }

  pathOf(digest: string): string {
    return join(this.dir, `${digest.replace(/^sha256:/, '')}.orb`)
  }

  /** The local file of a bundle, fetching it when it is not cached (or the cached copy is damaged). */
  ensure(b: MeshBundle): Promise<string> {
    let p = this.#inflight.get(b.digest)
    if (p === undefined) {
      p = this.#ensure(b).finally(() => this.#inflight.delete(b.digest))
      this.#inflight.set(b.digest, p)
    }
    return p
  }

  async #ensure(b: MeshBundle): Promise<string> {
    const file = this.pathOf(b.digest)
    const cached = await readFile(file).catch(() => undefined)
    if (cached && sha256Digest(cached) === b.digest) return file
    const bytes = await this.#fetch(b)
    const got = sha256Digest(bytes)
    if (got !== b.digest) {
      throw new ApplyError(ApplyErrorCode.BundleDigestMismatch, `bundle ${b.name}: registry ${b.registry} answered ${got}, pinned ${b.digest}`)
    }
    await mkdir(this.dir, { recursive: true })
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`
    await writeFile(tmp, bytes, { mode: 0o600 })
    await rename(tmp, file)
    return file
  }

  async #fetch(b: MeshBundle): Promise<Uint8Array> {
    const url = `${b.registry.replace(/\/+$/, '')}/v1/blobs/${b.digest}`
    let res: Response
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.#timeoutMs) })
    } catch (e) {
      throw new ApplyError(ApplyErrorCode.BundleFetchFailed, `bundle ${b.name}: GET ${url}: ${(e as Error).message}`, { cause: e })
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {})
      throw new ApplyError(ApplyErrorCode.BundleFetchFailed, `bundle ${b.name}: GET ${url}: HTTP ${res.status}`)
    }
    const declared = Number(res.headers.get('content-length') ?? 0)
    if (declared > this.#maxBytes) {
      await res.body?.cancel().catch(() => {})
      throw new ApplyError(ApplyErrorCode.BundleTooLarge, `bundle ${b.name}: ${declared} bytes, limit ${this.#maxBytes}`)
    }
    const chunks: Uint8Array[] = []
    let size = 0
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      size += c.length
      if (size > this.#maxBytes) throw new ApplyError(ApplyErrorCode.BundleTooLarge, `bundle ${b.name}: over ${this.#maxBytes} bytes`)
      chunks.push(c)
    }
    return Buffer.concat(chunks)
  }
}

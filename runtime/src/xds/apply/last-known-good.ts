/**
 * Last-known-good: every config the data plane applied from the control plane, as the proxy
 * config document it became (bundle paths point into the digest-named bundle cache), under
 * `<dataDir>/lkg/<epoch>.json`, newest kept plus a few before it. Written tmp + fsync +
 * rename, so a crash leaves the previous one intact.
 */
import { open, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { ApplyError, ApplyErrorCode } from './errors.ts'

export interface LkgRecord {
  epoch: number
  savedAt: string
  /** The proxy config document (validated again when loaded). */
  config: Record<string, unknown>
}

export class LastKnownGood {
  readonly dir: string
  readonly #keep: number

  constructor(dir: string, keep = 5) {
    this.dir = dir
    this.#keep = keep
  }

  async save(epoch: number, config: Record<string, unknown>): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    const rec: LkgRecord = { epoch, savedAt: new Date().toISOString(), config }
    const file = join(this.dir, `${epoch}.json`)
    const tmp = `${file}.tmp`
    const fh = await open(tmp, 'w', 0o600)
    try {
      await fh.writeFile(JSON.stringify(rec))
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, file)
    const epochs = await this.#epochs()
    for (const old of epochs.slice(this.#keep)) await rm(join(this.dir, `${old}.json`), { force: true })
  }

  /** The newest record, or undefined when none was ever saved. */
  async load(): Promise<LkgRecord | undefined> {
    const [newest] = await this.#epochs()
    if (newest === undefined) return undefined
    try {
      const rec = JSON.parse(await readFile(join(this.dir, `${newest}.json`), 'utf8')) as LkgRecord
      if (typeof rec.epoch !== 'number' || typeof rec.config !== 'object' || rec.config === null) throw new Error('malformed record')
      return rec
    } catch (e) {
      throw new ApplyError(ApplyErrorCode.LkgInvalid, `last-known-good ${newest}.json: ${(e as Error).message}`, { cause: e })
    }
  }

  /** Saved epochs, newest first. */
  async #epochs(): Promise<number[]> {
    const names = await readdir(this.dir).catch(() => [] as string[])
    return names
      .map((n) => /^(\d+)\.json$/.exec(n)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((a, b) => b - a)
  }
}

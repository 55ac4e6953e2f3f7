import { afterEach, describe, expect, it } from 'vitest'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlobStore } from './blob-store.ts'

const dirs: string[] = []
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})
async function store(cacheBytes?: number): Promise<BlobStore> {
  const d = await mkdtemp(join(tmpdir(), 'meshkit-blobs-'))
  dirs.push(d)
  const s = new BlobStore(d, cacheBytes)
  await s.init()
  return s
}

describe('BlobStore', () => {
  it('stores by digest, idempotently, leaving no temp files', async () => {
    const s = await store()
    const bytes = new TextEncoder().encode('hello')
    const d = await s.put(bytes)
    expect(d).toBe('sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824')
    expect(await s.put(bytes)).toBe(d)
    expect(await readdir(join(s.root, 'tmp'))).toEqual([])
    expect(Buffer.from(await s.read(d)).toString()).toBe('hello')
    const h = await s.open(d)
    expect(h?.size).toBe(5)
    expect(await s.open('sha256:' + '0'.repeat(64))).toBeUndefined()
    expect(() => s.pathOf('md5:abc')).toThrow(expect.objectContaining({ code: 'bad_request' }))
  })

  it('collects unreferenced blobs and stray temp files', async () => {
    const s = await store()
    const keep = await s.put(new Uint8Array([1]))
    const drop = await s.put(new Uint8Array([2]))
    await writeFile(join(s.root, 'tmp', 'partial'), 'x')
    const r = await s.collectGarbage((d) => d === keep)
    expect(r).toEqual({ removed: [drop], tempFiles: 1 })
    expect(await s.has(keep)).toBe(true)
    expect(await s.has(drop)).toBe(false)
  })

  it('never serves a blob whose bytes no longer match its digest', async () => {
    const s = await store(0)
    const d = await s.put(new Uint8Array([1, 2, 3]))
    await writeFile(s.pathOf(d), 'tampered')
    await expect(s.open(d)).rejects.toMatchObject({ code: 'storage_corrupt' })
  })
})

import { afterEach, describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { readdir, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { startRegistry } from '../src/index.ts'
import { ADMIN_TOKEN, fixture, makeJsBundle, getJson, post, PUBLISH_TOKEN, TOKENS, type Fixture } from './helpers.ts'

const fixtures: Fixture[] = []
afterEach(async () => {
  for (const f of fixtures.splice(0)) await f.cleanup()
})
async function fx(): Promise<Fixture> {
  const f = await fixture()
  fixtures.push(f)
  return f
}
const open = (f: Fixture) => startRegistry({ dataDir: f.dir, trustPolicy: f.trustPolicy, tokens: TOKENS, admission: { smoke: { runner: 'abi' } }, admissionIsolation: 'inline' })

async function blobFiles(dir: string): Promise<string[]> {
  const base = join(dir, 'blobs', 'sha256')
  const out: string[] = []
  for (const p of await readdir(base)) for (const h of await readdir(join(base, p))) out.push(h)
  return out.sort()
}

describe('persistence', () => {
  it('keeps bundles, yanks, revocations, tokens and the audit chain across a restart', async () => {
    const f = await fx()
    let reg = await open(f)
    const b = (await post(reg.url, await f.signed({ name: 'acme-keep' }), PUBLISH_TOKEN)).body.bundle
    await post(reg.url, await f.signed({ name: 'acme-keep', version: '1.1.0' }), PUBLISH_TOKEN)
    await fetch(`${reg.url}/v1/bundles/acme-keep/1.1.0/yank`, { method: 'POST', headers: { authorization: `Bearer ${PUBLISH_TOKEN}` }, body: '{"reason":"r"}' })
    const head = (await getJson(reg.url, '/v1/health')).body.auditHead
    await reg.close()

    reg = await startRegistry({ dataDir: f.dir, trustPolicy: f.trustPolicy, admission: { smoke: { runner: 'abi' } }, admissionIsolation: 'inline' })
    try {
      const versions = (await getJson(reg.url, '/v1/bundles/acme-keep')).body.versions
      expect(versions.map((v: { version: string; yanked: unknown }) => [v.version, v.yanked !== null])).toEqual([['1.0.0', false], ['1.1.0', true]])
      const dl = await fetch(`${reg.url}/v1/blobs/${b.digest}`)
      expect(dl.status).toBe(200)
      expect((await dl.arrayBuffer()).byteLength).toBe(b.size)
      // Tokens persisted in the database (none given this time).
      expect((await post(reg.url, await f.signed({ name: 'acme-keep', version: '2.0.0' }), PUBLISH_TOKEN)).status).toBe(201)
      const v = (await getJson(reg.url, '/v1/audit/verify', ADMIN_TOKEN)).body
      expect(v.ok).toBe(true)
      expect(v.entries).toBe(head.seq + 1)
    } finally {
      await reg.close()
    }
  })

  it('leaves no half-stored bundle after a crash between blobs and metadata; orphans are collected at start', async () => {
    const f = await fx()
    // A quickjs bundle: the child then needs no binaryen, which loads very slowly under tsx.
    const bundle = await f.sign(makeJsBundle('acme-crash'))
    await writeFile(join(f.dir, 'bundle.orb'), bundle)
    await writeFile(join(f.dir, 'policy.json'), JSON.stringify(f.trustPolicy))
    const script = fileURLToPath(new URL('./fixtures/crash-publish.ts', import.meta.url))
    const child = await new Promise<{ signal: string | null; stdout: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', script, f.dir, join(f.dir, 'policy.json'), join(f.dir, 'bundle.orb')], { timeout: 30_000 }, (err, stdout) =>
        resolve({ signal: (err as { signal?: string } | null)?.signal ?? null, stdout }),
      )
    })
    expect(child.signal).toBe('SIGKILL')
    expect(child.stdout).not.toContain('not killed')
    expect((await blobFiles(f.dir)).length).toBe(1) // the bundle file, and no metadata
    await mkdir(join(f.dir, 'blobs', 'tmp'), { recursive: true })
    await writeFile(join(f.dir, 'blobs', 'tmp', 'half-written'), 'x')

    const reg = await open(f)
    try {
      expect(await blobFiles(f.dir)).toEqual([])
      expect(await readdir(join(f.dir, 'blobs', 'tmp'))).toEqual([])
      expect((await getJson(reg.url, '/v1/bundles')).body.bundles).toEqual([])
      expect((await getJson(reg.url, '/v1/audit/verify', ADMIN_TOKEN)).body).toMatchObject({ ok: true, entries: 0 })
      // The same publish now goes through.
      expect((await post(reg.url, bundle, PUBLISH_TOKEN)).status).toBe(201)
      expect((await blobFiles(f.dir)).length).toBe(1)
    } finally {
      await reg.close()
    }
  })
})

describe('blob integrity', () => {
  it('refuses to serve a blob corrupted on disk', async () => {
    const f = await fx()
    let reg = await open(f)
    const b = (await post(reg.url, await f.signed({ name: 'acme-rot' }), PUBLISH_TOKEN)).body.bundle
    await reg.close()
    const hex = (b.digest as string).slice(7)
    await writeFile(join(f.dir, 'blobs', 'sha256', hex.slice(0, 2), hex), 'rotten')
    reg = await open(f)
    try {
      const r = await getJson(reg.url, `/v1/blobs/${b.digest}`)
      expect(r.status).toBe(500)
      expect(r.body.error.code).toBe('storage_corrupt')
    } finally {
      await reg.close()
    }
  })
})

describe('audit tamper detection', () => {
  async function seeded(): Promise<Fixture> {
    const f = await fx()
    const reg = await open(f)
    await post(reg.url, await f.signed({ name: 'acme-a' }), PUBLISH_TOKEN)
    await post(reg.url, await f.signed({ name: 'acme-b' }), PUBLISH_TOKEN)
    await post(reg.url, new Uint8Array([1, 2, 3]), PUBLISH_TOKEN)
    await post(reg.url, await f.signed({ name: 'acme-c' }), PUBLISH_TOKEN)
    expect((await getJson(reg.url, '/v1/audit/verify', ADMIN_TOKEN)).body).toMatchObject({ ok: true, entries: 4 })
    await reg.close()
    return f
  }
  async function verify(f: Fixture): Promise<{ ok: boolean; problem?: { seq: number; reason: string } }> {
    const reg = await open(f)
    try {
      return (await getJson(reg.url, '/v1/audit/verify', ADMIN_TOKEN)).body
    } finally {
      await reg.close()
    }
  }
  function sql(f: Fixture, ...statements: string[]): void {
    const db = new Database(join(f.dir, 'registry.sqlite'))
    try {
      for (const s of statements) db.exec(s)
    } finally {
      db.close()
    }
  }

  it('the database itself refuses updates and deletes of audit rows', async () => {
    const f = await seeded()
    expect(() => sql(f, "UPDATE audit SET result = 'admitted' WHERE seq = 3")).toThrow(/append-only/)
    expect(() => sql(f, 'DELETE FROM audit WHERE seq = 3')).toThrow(/append-only/)
  })

  it('detects an edited entry and names it', async () => {
    const f = await seeded()
    sql(f, 'DROP TRIGGER audit_no_update', "UPDATE audit SET result = 'admitted' WHERE seq = 3")
    expect(await verify(f)).toMatchObject({ ok: false, problem: { seq: 3, reason: 'hash_mismatch' } })
  })

  it('detects an entry re-hashed to hide an edit (the next link breaks)', async () => {
    const f = await seeded()
    sql(f, 'DROP TRIGGER audit_no_update', "UPDATE audit SET actor = 'someone-else', hash = 'ab' || substr(hash, 3) WHERE seq = 2")
    const v = await verify(f)
    expect(v.ok).toBe(false)
    expect(v.problem?.seq).toBe(2)
  })

  it('detects a deleted entry and names it', async () => {
    const f = await seeded()
    sql(f, 'DROP TRIGGER audit_no_delete', 'DELETE FROM audit WHERE seq = 2')
    expect(await verify(f)).toMatchObject({ ok: false, problem: { seq: 2, reason: 'entry_missing' } })
  })

  it('detects entries cut off the tail', async () => {
    const f = await seeded()
    sql(f, 'DROP TRIGGER audit_no_delete', 'DELETE FROM audit WHERE seq = 4')
    expect(await verify(f)).toMatchObject({ ok: false, problem: { seq: 4, reason: 'entry_missing' } })
  })
})

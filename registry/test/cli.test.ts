import { fileURLToPath } from 'node:url'
import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import Database from 'better-sqlite3'
import { registryCommand, startRegistry, type RunningRegistry } from '../src/index.ts'
import { ADMIN_TOKEN, fixture, post, PUBLISH_TOKEN, TOKENS, type Fixture } from './helpers.ts'

let f: Fixture
let reg: RunningRegistry

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await registryCommand(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env: {} })
  return { code, out, err }
}

beforeAll(async () => {
  f = await fixture()
  reg = await startRegistry({ dataDir: f.dir, trustPolicy: f.trustPolicy, tokens: TOKENS, admission: { smoke: { runner: 'abi' } }, admissionIsolation: 'inline' })
  await post(reg.url, await f.signed({ name: 'acme-cli', version: '1.0.0', description: 'cli test filter' }), PUBLISH_TOKEN)
  await post(reg.url, await f.signed({ name: 'acme-cli', version: '1.1.0' }), PUBLISH_TOKEN)
})
afterAll(async () => {
  await reg?.close()
  await f?.cleanup()
})

describe('meshkit registry CLI', () => {
  it('ls / show as tables and JSON, over HTTP and on the data directory', async () => {
    const http = await run(['ls', '--url', reg.url])
    expect(http.code).toBe(0)
    expect(http.out).toMatch(/^NAME\s+KIND\s+LATEST/)
    expect(http.out).toMatch(/acme-cli\s+wasm\s+1\.1\.0\s+2/)
    const local = await run(['ls', '--data', f.dir, '--json'])
    expect(JSON.parse(local.out)).toEqual(JSON.parse((await run(['ls', '--url', reg.url, '--json'])).out))
    const versions = await run(['ls', 'acme-cli', '--url', reg.url])
    expect(versions.out.split('\n').filter(Boolean)).toHaveLength(3)
    const show = await run(['show', 'acme-cli@1.0.0', '--url', reg.url, '--json'])
    expect(JSON.parse(show.out)).toMatchObject({ name: 'acme-cli', version: '1.0.0', signer: { keyId: 'acme-2026' } })
    expect((await run(['show', 'acme-cli@9.0.0', '--url', reg.url])).code).toBe(1)
    expect((await run(['show', 'nonsense', '--url', reg.url])).code).toBe(2)
  })

  it('publish, yank and revoke', async () => {
    const file = join(f.dir, 'p.orb')
    await writeFile(file, await f.signed({ name: 'acme-cli2' }))
    const p = await run(['publish', file, '--url', reg.url, '--token', PUBLISH_TOKEN])
    expect(p.code).toBe(0)
    expect(p.out).toMatch(/^admitted acme-cli2@1\.0\.0 sha256:/)
    await writeFile(file, new Uint8Array([9, 9, 9]))
    const bad = await run(['publish', file, '--url', reg.url, '--token', PUBLISH_TOKEN])
    expect(bad.code).toBe(1)
    expect(bad.err).toContain('[format] bundle_malformed')
    expect((await run(['yank', 'acme-cli@1.1.0', '--reason', 'oops', '--url', reg.url, '--token', PUBLISH_TOKEN])).code).toBe(0)
    expect((await run(['ls', '--url', reg.url, '--json', '--query', 'acme-cli'])).out).toContain('"latest": "1.0.0"')
    const rv = await run(['revoke', '--signer', 'mallory-1', '--url', reg.url, '--token', ADMIN_TOKEN])
    expect(rv.code).toBe(0)
    expect((await run(['revocations', '--url', reg.url])).out).toMatch(/signer\s+mallory-1/)
    expect((await run(['revoke', '--url', reg.url, '--token', ADMIN_TOKEN])).code).toBe(2)
  })

  it('token add on the data directory gives a working, hashed token', async () => {
    const add = await run(['token', 'add', 'laptop', '--names', 'acme-*', '--data', f.dir, '--json'])
    expect(add.code).toBe(0)
    const { token } = JSON.parse(add.out) as { token: string }
    expect(token).toMatch(/^mkr_/)
    const db = new Database(join(f.dir, 'registry.sqlite'), { readonly: true })
    const stored = JSON.stringify(db.prepare('SELECT * FROM tokens').all())
    db.close()
    expect(stored).not.toContain(token)
    const r = await post(reg.url, await f.signed({ name: 'acme-laptop' }), token)
    expect(r.status).toBe(201)
    expect(r.body.bundle.publishedBy).toBe('token:laptop')
    expect((await run(['token', 'ls', '--data', f.dir])).out).toContain('laptop')
  })

  it('audit lists entries and verify detects tampering (exit 1, names the entry)', async () => {
    const list = await run(['audit', '--url', reg.url, '--token', ADMIN_TOKEN])
    expect(list.code).toBe(0)
    expect(list.out).toMatch(/^SEQ\s+AT\s+ACTOR/)
    expect(list.out).toContain('refused:bundle_malformed')
    expect((await run(['audit', 'verify', '--data', f.dir])).code).toBe(0)
    const db = new Database(join(f.dir, 'registry.sqlite'))
    db.exec("DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'nobody' WHERE seq = 2")
    db.close()
    const v = await run(['audit', 'verify', '--data', f.dir])
    expect(v.code).toBe(1)
    expect(v.out).toContain('BROKEN at entry 2: hash_mismatch')
    const j = await run(['audit', 'verify', '--url', reg.url, '--token', ADMIN_TOKEN, '--json'])
    expect(JSON.parse(j.out)).toMatchObject({ ok: false, problem: { seq: 2 } })
  })

  it('meshkit audit verify (the meshkit bin) recomputes the same chain', async () => {
    const bin = fileURLToPath(new URL('../../control/bin/meshkit.js', import.meta.url))
    const r = spawnSync(process.execPath, [bin, 'audit', 'verify', '--data', f.dir, '--json'], { encoding: 'utf8' })
    // The previous test broke entry 2 on purpose: the meshkit bin must see it too.
    expect(r.status).toBe(1)
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, problem: { seq: 2 } })
  })

  it('serves a data directory until stopped', async () => {
    const g = await fixture()
    try {
      await writeFile(join(g.dir, 'trust-policy.json'), JSON.stringify(g.trustPolicy))
      let stop!: () => void
      const stopSignal = new Promise<void>((r) => (stop = r))
      let url = ''
      let ready!: () => void
      const listening = new Promise<void>((r) => (ready = r))
      const done = registryCommand(['--data', g.dir, '--port', '0'], { stdout: { write: () => true }, stopSignal, onListening: (u) => ((url = u), ready()) })
      await listening
      expect(((await (await fetch(`${url}/v1/health`)).json()) as { ok: boolean }).ok).toBe(true)
      stop()
      expect(await done).toBe(0)
      await expect(fetch(`${url}/v1/health`)).rejects.toThrow()
    } finally {
      await g.cleanup()
    }
  })

  it('reports usage errors with exit code 2', async () => {
    expect((await run(['frobnicate', '--url', 'http://127.0.0.1:1'])).code).toBe(2)
    expect((await run(['ls'])).code).toBe(2)
    expect((await run(['--bogus-flag'])).code).toBe(2)
  })
})

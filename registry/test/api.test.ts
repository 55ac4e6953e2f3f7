import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { pollRevocations, publishBundle, RegistryClientError, startRegistry, type RunningRegistry } from '../src/index.ts'
import { ADMIN_TOKEN, filterWat, fixture, getJson, OTHER_TOKEN, post, postJson, PUBLISH_TOKEN, TOKENS, type Fixture } from './helpers.ts'

let f: Fixture
let reg: RunningRegistry

beforeAll(async () => {
  f = await fixture()
  reg = await startRegistry({ dataDir: f.dir, trustPolicy: f.trustPolicy, tokens: TOKENS, admission: { smoke: { runner: 'abi' } }, admissionIsolation: 'inline' })
})
afterAll(async () => {
  await reg?.close()
  await f?.cleanup()
})

describe('HTTP API', () => {
  it('downloads by digest with a strong ETag and immutable caching', async () => {
    const file = await f.signed({ name: 'acme-dl' })
    const { body } = await post(reg.url, file, PUBLISH_TOKEN)
    const digest = body.bundle.digest as string
    const res = await fetch(`${reg.url}/v1/blobs/${digest}`)
    expect(res.status).toBe(200)
    expect(res.headers.get('etag')).toBe(`"${digest}"`)
    expect(res.headers.get('cache-control')).toContain('immutable')
    const bytes = new Uint8Array(await res.arrayBuffer())
    expect('sha256:' + createHash('sha256').update(bytes).digest('hex')).toBe(digest)
    expect(Buffer.compare(Buffer.from(bytes), Buffer.from(file))).toBe(0)
    const cached = await fetch(`${reg.url}/v1/blobs/${digest}`, { headers: { 'if-none-match': `"${digest}"` } })
    expect(cached.status).toBe(304)
    const head = await fetch(`${reg.url}/v1/blobs/${digest}`, { method: 'HEAD' })
    expect(head.headers.get('content-length')).toBe(String(file.length))
    const missing = await getJson(reg.url, `/v1/blobs/sha256:${'0'.repeat(64)}`)
    expect(missing.status).toBe(404)
    expect(missing.body.error.code).toBe('not_found')
    expect((await getJson(reg.url, '/v1/blobs/nope')).body.error.code).toBe('bad_request')
  })

  it('lists, shows, gets manifests and searches by name and capability', async () => {
    await post(reg.url, await f.signed({ name: 'acme-search', version: '1.0.0' }), PUBLISH_TOKEN)
    await post(reg.url, await f.signed({ name: 'acme-search', version: '1.10.0' }), PUBLISH_TOKEN)
    await post(reg.url, await f.signed({ name: 'acme-search', version: '1.9.0' }), PUBLISH_TOKEN)
    await post(reg.url, await f.signed({ name: '@acme/scoped', capabilities: ['log', 'headers:read', 'headers:write', 'metrics'] }), PUBLISH_TOKEN)
    const list = await getJson(reg.url, '/v1/bundles?q=search')
    expect(list.body.bundles).toEqual([expect.objectContaining({ name: 'acme-search', latest: '1.10.0', versions: 3 })])
    const byCap = await getJson(reg.url, '/v1/search?capability=metrics')
    expect(byCap.body.bundles.map((b: { name: string }) => b.name)).toEqual(['@acme/scoped'])
    const versions = await getJson(reg.url, '/v1/bundles/acme-search')
    expect(versions.body.versions.map((v: { version: string }) => v.version)).toEqual(['1.0.0', '1.10.0', '1.9.0'])
    // A scoped name works as two segments and percent-encoded.
    const two = await getJson(reg.url, '/v1/bundles/@acme/scoped/1.0.0')
    const enc = await getJson(reg.url, `/v1/bundles/${encodeURIComponent('@acme/scoped')}/1.0.0`)
    expect(two.body.digest).toBe(enc.body.digest)
    const manifest = await getJson(reg.url, '/v1/bundles/@acme/scoped/1.0.0/manifest')
    expect(manifest.body).toMatchObject({ name: '@acme/scoped', version: '1.0.0', kind: 'wasm' })
    expect(manifest.headers.get('x-manifest-digest')).toBe(two.body.manifestDigest)
    const raw = new Uint8Array(await (await fetch(`${reg.url}/v1/bundles/@acme/scoped/1.0.0/manifest`)).arrayBuffer())
    expect('sha256:' + createHash('sha256').update(raw).digest('hex')).toBe(two.body.manifestDigest)
    expect((await getJson(reg.url, '/v1/bundles/acme-search/9.9.9')).status).toBe(404)
  })

  it('yanks: latest skips the yanked version, pinned downloads still resolve', async () => {
    await post(reg.url, await f.signed({ name: 'acme-yank', version: '1.0.0' }), PUBLISH_TOKEN)
    const v2 = (await post(reg.url, await f.signed({ name: 'acme-yank', version: '2.0.0' }), PUBLISH_TOKEN)).body.bundle
    const y = await postJson(reg.url, '/v1/bundles/acme-yank/2.0.0/yank', { reason: 'bad rollout' }, PUBLISH_TOKEN)
    expect(y.status).toBe(200)
    expect(y.body.yanked).toMatchObject({ reason: 'bad rollout' })
    const list = await getJson(reg.url, '/v1/bundles?q=acme-yank')
    expect(list.body.bundles[0].latest).toBe('1.0.0')
    expect((await fetch(`${reg.url}/v1/blobs/${v2.digest}`)).status).toBe(200)
    expect((await postJson(reg.url, '/v1/bundles/acme-yank/2.0.0/yank', {}, OTHER_TOKEN)).status).toBe(403)
  })

  it('revokes a digest and a signer: listed for data planes, downloads refused', async () => {
    const b = (await post(reg.url, await f.signed({ name: 'acme-revoke', wat: filterWat({ extra: '(func (export "only_in_revoked"))' }) }), PUBLISH_TOKEN)).body.bundle
    expect((await postJson(reg.url, '/v1/revocations', { digest: b.digest, reason: 'cve' }, PUBLISH_TOKEN)).status).toBe(403)
    const r = await postJson(reg.url, '/v1/revocations', { digest: b.digest, reason: 'cve' }, ADMIN_TOKEN)
    expect(r.status).toBe(201)
    const list = await getJson(reg.url, '/v1/revocations')
    expect(list.body.digests).toContain(b.digest)
    expect(list.body.serial).toBeGreaterThan(0)
    const etag = list.headers.get('etag') as string
    expect((await fetch(`${reg.url}/v1/revocations`, { headers: { 'if-none-match': etag } })).status).toBe(304)
    const polled = await pollRevocations(reg.url)
    expect(polled).toMatchObject({ changed: true, etag, list: { digests: [b.digest] } })
    expect(await pollRevocations(reg.url, { etag })).toEqual({ changed: false, etag })
    const dl = await getJson(reg.url, `/v1/blobs/${b.digest}`)
    expect(dl.status).toBe(410)
    expect(dl.body.error.code).toBe('revoked')
    expect((await fetch(`${reg.url}/v1/blobs/${b.instrumentedDigest}`)).status).toBe(410)
    expect((await getJson(reg.url, '/v1/bundles/acme-revoke/1.0.0')).body.revoked).toMatchObject({ kind: 'digest' })

    expect((await postJson(reg.url, '/v1/revocations', { reason: 'x' }, ADMIN_TOKEN)).body.error.code).toBe('bad_request')
  })

  it('authenticates publishers and scopes them to name patterns', async () => {
    const file = await f.signed({ name: 'acme-auth' })
    const anon = await post(reg.url, file)
    expect(anon.status).toBe(401)
    expect(anon.body.error.code).toBe('unauthorized')
    expect((await post(reg.url, file, 'mkr_wrong_token_xxxxxxxxxxxx')).status).toBe(401)
    const other = await post(reg.url, file, OTHER_TOKEN)
    expect(other.status).toBe(403)
    expect(other.body.error.code).toBe('forbidden')
    expect((await getJson(reg.url, '/v1/audit', PUBLISH_TOKEN)).status).toBe(403)
  })

  it('publishBundle() for tools: admitted, exists, refusals as RegistryClientError', async () => {
    const file = await f.signed({ name: 'acme-client' })
    expect((await publishBundle(reg.url, PUBLISH_TOKEN, file)).result).toBe('admitted')
    expect((await publishBundle(reg.url, PUBLISH_TOKEN, file)).result).toBe('exists')
    const err = await publishBundle(reg.url, PUBLISH_TOKEN, new Uint8Array([1, 2, 3])).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RegistryClientError)
    expect(err).toMatchObject({ code: 'bundle_malformed', step: 'format', status: 422 })
  })

  it('admits concurrent publishes once: same bundle, different bundles, same version with other bytes', async () => {
    const same = await f.signed({ name: 'acme-race' })
    const rs = await Promise.all(Array.from({ length: 6 }, () => post(reg.url, same, PUBLISH_TOKEN)))
    expect(rs.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201])
    const many = await Promise.all(Array.from({ length: 5 }, (_, i) => f.signed({ name: `acme-par-${i}` })))
    const ps = await Promise.all(many.map((b) => post(reg.url, b, PUBLISH_TOKEN)))
    expect(ps.map((r) => r.status)).toEqual([201, 201, 201, 201, 201])
    const a = await f.signed({ name: 'acme-clash', description: 'a' })
    const b = await f.signed({ name: 'acme-clash', description: 'b' })
    const clash = await Promise.all([post(reg.url, a, PUBLISH_TOKEN), post(reg.url, b, PUBLISH_TOKEN)])
    expect(clash.map((r) => r.status).sort()).toEqual([201, 409])
    expect((await getJson(reg.url, '/v1/audit/verify', ADMIN_TOKEN)).body.ok).toBe(true)
  })

  it('answers unknown routes and bad JSON with coded errors, never a crash', async () => {
    expect((await getJson(reg.url, '/v2/bundles')).body.error.code).toBe('not_found')
    expect((await getJson(reg.url, '/v1/bundles/%E0%A4%A')).body.error.code).toBe('bad_request')
    const res = await fetch(`${reg.url}/v1/revocations`, { method: 'POST', body: '{nope', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('bad_request')
    expect((await getJson(reg.url, '/v1/health')).body.ok).toBe(true)
  })
})

describe('signer revocation', () => {
  it('marks every bundle of a revoked signer, refuses its downloads and its new publishes', async () => {
    const g = await fixture()
    const r = await startRegistry({ dataDir: g.dir, trustPolicy: g.trustPolicy, tokens: TOKENS, admission: { smoke: { runner: 'abi' } }, admissionIsolation: 'inline' })
    try {
      const b = (await post(r.url, await g.signed({ name: 'acme-old' }), PUBLISH_TOKEN)).body.bundle
      const s = await postJson(r.url, '/v1/revocations', { signer: 'acme-2026', reason: 'key leaked' }, ADMIN_TOKEN)
      expect(s.status).toBe(201)
      expect((await getJson(r.url, '/v1/revocations')).body.signers).toEqual(['acme-2026'])
      expect((await getJson(r.url, '/v1/bundles/acme-old/1.0.0')).body.revoked).toMatchObject({ kind: 'signer', target: 'acme-2026' })
      expect((await fetch(`${r.url}/v1/blobs/${b.digest}`)).status).toBe(410)
      const again = await post(r.url, await g.signed({ name: 'acme-new' }), PUBLISH_TOKEN)
      expect(again.body.error).toMatchObject({ code: 'signer_revoked', step: 'signature' })
      // Re-publishing revoked content is refused too.
      const same = await post(r.url, await g.signed({ name: 'acme-old' }), PUBLISH_TOKEN)
      expect(same.status).toBeGreaterThanOrEqual(400)
    } finally {
      await r.close()
      await g.cleanup()
    }
  })
})

describe('token-protected reads', () => {
  it('refuses reads without a read token when configured', async () => {
    const g = await fixture()
    const r = await startRegistry({ dataDir: g.dir, trustPolicy: g.trustPolicy, tokens: TOKENS, readAccess: 'token', admission: { smoke: { runner: 'abi' } }, admissionIsolation: 'inline' })
    try {
      expect((await getJson(r.url, '/v1/bundles')).status).toBe(401)
      expect((await getJson(r.url, '/v1/bundles', OTHER_TOKEN)).status).toBe(403)
      expect((await getJson(r.url, '/v1/bundles', PUBLISH_TOKEN)).status).toBe(200)
    } finally {
      await r.close()
      await g.cleanup()
    }
  })
})

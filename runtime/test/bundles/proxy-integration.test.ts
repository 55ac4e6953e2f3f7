// The proxy loads a signed bundle referenced by path + digest and serves with it; a reload
// pointing at a tampered bundle is refused with the bundle's code and the previous version
// keeps serving.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type ProxyHandle } from '../../src/index.ts'
import { silentLogger } from '../../src/observability/logger.ts'
import { sha256Digest } from '../../src/bundles/digest.ts'
import { packBundle, unpackBundle } from '../../src/bundles/format.ts'
import { BundleErrorCode } from '../../src/bundles/errors.ts'
import { buildBundle } from '../../src/bundles/build.ts'
import { signBundle } from '../../src/bundles/sign.ts'
import { json, request, startUpstream, type Upstream } from '../helpers/servers.ts'
import { newKey, policyDoc, signedWasmBundle, tagFilter, tempDir } from './fixtures.ts'

describe('proxy with signed bundles', () => {
  let up: Upstream
  let proxy: ProxyHandle
  let dir: string
  let cleanup: () => Promise<void>
  const key = newKey('ed25519', 'it-1')

  function config(bundle: { path: string; digest: string }) {
    return {
      listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
      accessLog: 'off',
      trustPolicy: 'policy.json',
      clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
      filters: [{ name: 'tag', kind: 'wasm', bundle, capabilities: ['headers:read', 'headers:write', 'log'] }],
      routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app', filters: ['tag'] }],
    }
  }

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    up = await startUpstream()
    await writeFile(join(dir, 'policy.json'), JSON.stringify(policyDoc([{ key }])))
    const v1 = await signedWasmBundle(key, await tagFilter('v1'), { name: 'tag', version: '1.0.0' })
    const v2 = await signedWasmBundle(key, await tagFilter('v2'), { name: 'tag', version: '2.0.0' })
    await writeFile(join(dir, 'tag-1.orb'), v1)
    await writeFile(join(dir, 'tag-2.orb'), v2)
    // v2 with its module flipped by one byte inside the data segment ("v2" -> "v3"), signature kept.
    const c = unpackBundle(v2)
    const wasm = (c.artifacts.get('filter.wasm') as Uint8Array).slice()
    const at = Buffer.from(wasm).indexOf('v2')
    wasm[at + 1] = '3'.charCodeAt(0)
    const tampered = packBundle({ ...c, artifacts: new Map([['filter.wasm', wasm]]) })
    await writeFile(join(dir, 'tag-bad.orb'), tampered)
    proxy = await startProxy(config({ path: 'tag-1.orb', digest: sha256Digest(v1) }), { baseDir: dir, log: silentLogger })
  })
  afterAll(async () => {
    await proxy?.close()
    await up?.close()
    await cleanup?.()
  })

  it('serves with the verified bundle', async () => {
    const r = await request(proxy.address('main').port, { path: '/x' })
    expect(r.status).toBe(200)
    expect(json(r).headers['x-bundle']).toBe('v1')
  })

  it('refuses a reload pointing at a tampered bundle and keeps serving the previous version', async () => {
    const epoch = proxy.epoch
    const bad = await readFile(join(dir, 'tag-bad.orb'))
    const err = await proxy.reload(config({ path: 'tag-bad.orb', digest: sha256Digest(bad) })).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    expect(err).toBeDefined()
    expect(String((err as Error & { issues?: unknown }).message) + JSON.stringify((err as { issues?: unknown }).issues)).toContain(
      BundleErrorCode.ArtifactDigestMismatch,
    )
    expect(proxy.epoch).toBe(epoch)
    expect(json(await request(proxy.address('main').port, { path: '/x' })).headers['x-bundle']).toBe('v1')
  })

  it('refuses a reload whose pin does not match, then applies a good new version', async () => {
    const v2 = await readFile(join(dir, 'tag-2.orb'))
    await expect(proxy.reload(config({ path: 'tag-2.orb', digest: sha256Digest('nope') }))).rejects.toThrow()
    expect(json(await request(proxy.address('main').port, { path: '/x' })).headers['x-bundle']).toBe('v1')
    await proxy.reload(config({ path: 'tag-2.orb', digest: sha256Digest(v2) }))
    expect(json(await request(proxy.address('main').port, { path: '/x' })).headers['x-bundle']).toBe('v2')
  })
})

describe('proxy with a signed QuickJS bundle', () => {
  it('builds from a .js filter, signs, and serves it verified', async () => {
    const { dir, cleanup } = await tempDir()
    const up = await startUpstream()
    let proxy: ProxyHandle | undefined
    try {
      const key = newKey('ecdsa-p256', 'js-1')
      await writeFile(join(dir, 'filter.js'), "export function onRequestHeaders(req, ctx) { return ctx.reply(403, 'from a signed js bundle') }\n")
      const built = await buildBundle({ source: join(dir, 'filter.js'), name: 'js-tag', version: '1.0.0', capabilities: ['headers:read', 'local-reply'] })
      const file = await signBundle(built.file, key)
      await writeFile(join(dir, 'js-tag.orb'), file)
      await writeFile(join(dir, 'policy.json'), JSON.stringify(policyDoc([{ key }])))
      proxy = await startProxy(
        {
          listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
          accessLog: 'off',
          trustPolicy: 'policy.json',
          clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
          filters: [{ name: 'js', kind: 'quickjs', bundle: { path: 'js-tag.orb', digest: sha256Digest(file) }, capabilities: ['headers:read', 'local-reply', 'log'] }],
          routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app', filters: ['js'] }],
        },
        { baseDir: dir, log: silentLogger },
      )
      const r = await request(proxy.address('main').port, { path: '/' })
      expect([r.status, r.body]).toEqual([403, 'from a signed js bundle'])
      expect(up.seen).toHaveLength(0)
    } finally {
      await proxy?.close()
      await up.close()
      await cleanup()
    }
  })
})

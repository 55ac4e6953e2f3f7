import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { loadArtifact, type BundleArtifact } from '../../src/bundles/load-artifact.ts'
import { BundleErrorCode } from '../../src/bundles/errors.ts'
import { sha256Digest } from '../../src/bundles/digest.ts'
import { unpackBundle, packBundle } from '../../src/bundles/format.ts'
import { announceUnsignedMode, UNSIGNED_MODE_METRIC } from '../../src/bundles/unsigned-mode.ts'
import { MetricsRegistry } from '../../src/observability/metrics.ts'
import { createLogger } from '../../src/observability/logger.ts'
import type { FilterDefinition } from '../../src/pipeline/filter.ts'
import { manifestFor, newKey, policyDoc, proxyWasm, refusedWith, signedFromManifest, signedWasmBundle, tempDir } from './fixtures.ts'

const { dir, cleanup } = await tempDir()
afterAll(cleanup)

const key = newKey('ecdsa-p256', 'acme-1')
const wasm = await proxyWasm(['proxy_log', 'proxy_get_header_map_value'])
const schema = { type: 'object', properties: { header: { type: 'string' } }, required: ['header'], additionalProperties: false }
const good = await signedWasmBundle(key, wasm, {
  name: 'demo',
  capabilities: ['headers:read', 'headers:write', 'log'],
  quotas: { default: { fuel: 1000 }, maximum: { fuel: 5000 } },
  configSchema: schema,
})
await writeFile(join(dir, 'demo.orb'), good)
await writeFile(join(dir, 'policy.yaml'), JSON.stringify(policyDoc([{ key }])))
const digest = sha256Digest(good)

function def(over: Partial<FilterDefinition> = {}): FilterDefinition {
  return {
    name: 'f1',
    kind: 'wasm',
    bundle: { path: 'demo.orb', digest },
    config: { header: 'x-demo' },
    failurePolicy: 'fail-closed',
    isolation: 'shared',
    quotas: {},
    capabilities: ['headers:read', 'headers:write', 'log', 'http-callout'],
    ...over,
  }
}
const opts = { baseDir: dir, allowUnsigned: false, trustPolicy: 'policy.yaml' }

describe('loadArtifact with bundles', () => {
  it('loads a verified bundle with identity, pinned digest and the effective grant', async () => {
    const a = (await loadArtifact(def(), opts)) as BundleArtifact
    expect(a.unsigned).toBe(false)
    expect(a.kind).toBe('wasm')
    expect(a.bytes).toEqual(wasm)
    expect(a.digest).toBe(sha256Digest(wasm).slice(7))
    expect(a.bundle).toEqual({ name: 'demo', version: '1.0.0', digest, signer: 'acme' })
    // requested ∩ config grant (http-callout is granted but not requested)
    expect(a.capabilities.sort()).toEqual(['headers:read', 'headers:write', 'log'])
    expect(a.quotas).toEqual({ fuel: 1000 })
    expect(a.signerKey.keyId).toBe('acme-1')
  })

  it('intersects with what the publisher may grant and with the config grant', async () => {
    const policy = policyDoc([{ key }], { maxCapabilities: ['headers:read', 'log', 'headers:write'] })
    const a = await loadArtifact(def({ capabilities: ['headers:read', 'log'] }), { ...opts, trustPolicy: policy })
    expect(a.capabilities.sort()).toEqual(['headers:read', 'log'])
  })

  it('refuses when config does not grant what the module imports need', async () => {
    expect(await refusedWith(loadArtifact(def({ capabilities: ['log'] }), opts))).toBe(BundleErrorCode.CapabilitiesNotGranted)
  })

  it('accepts file: URLs and refuses remote URLs', async () => {
    await expect(loadArtifact(def({ bundle: { path: pathToFileURL(join(dir, 'demo.orb')).href, digest } }), opts)).resolves.toBeTruthy()
    expect(await refusedWith(loadArtifact(def({ bundle: { path: 'https://registry.example/demo.orb', digest } }), opts))).toBe(BundleErrorCode.ReadFailed)
  })

  it('accepts bare-hex pins and refuses a missing or wrong pin', async () => {
    await expect(loadArtifact(def({ bundle: { path: 'demo.orb', digest: digest.slice(7).toUpperCase() } }), opts)).resolves.toBeTruthy()
    expect(await refusedWith(loadArtifact(def({ bundle: { path: 'demo.orb' } }), opts))).toBe(BundleErrorCode.DigestRequired)
    expect(await refusedWith(loadArtifact(def({ bundle: { path: 'demo.orb', digest: sha256Digest('other') } }), opts))).toBe(BundleErrorCode.DigestMismatch)
  })

  it('still refuses a tampered bundle even when the pin names the tampered file', async () => {
    const c = unpackBundle(good)
    const art = (c.artifacts.get('filter.wasm') as Uint8Array).slice()
    art[art.length - 1] ^= 1
    const bad = packBundle({ ...c, artifacts: new Map([['filter.wasm', art]]) })
    await writeFile(join(dir, 'bad.orb'), bad)
    const r = refusedWith(loadArtifact(def({ bundle: { path: 'bad.orb', digest: sha256Digest(bad) } }), opts))
    expect(await r).toBe(BundleErrorCode.ArtifactDigestMismatch)
  })

  it('refuses config quotas above the maximum and config that fails the schema', async () => {
    expect(await refusedWith(loadArtifact(def({ quotas: { fuel: 9999 } }), opts))).toBe(BundleErrorCode.QuotaExceedsMaximum)
    expect(await refusedWith(loadArtifact(def({ config: { header: 1 } }), opts))).toBe(BundleErrorCode.ConfigInvalid)
    expect(await refusedWith(loadArtifact(def({ config: undefined }), opts))).toBe(BundleErrorCode.ConfigInvalid)
  })

  it('refuses a kind mismatch, a missing policy and a missing file', async () => {
    expect(await refusedWith(loadArtifact(def({ kind: 'quickjs' }), opts))).toBe(BundleErrorCode.KindMismatch)
    expect(await refusedWith(loadArtifact(def(), { baseDir: dir, allowUnsigned: false }))).toBe(BundleErrorCode.PolicyMissing)
    expect(await refusedWith(loadArtifact(def(), { ...opts, trustPolicy: 'nope.yaml' }))).toBe(BundleErrorCode.PolicyMissing)
    expect(await refusedWith(loadArtifact(def({ bundle: { path: 'nope.orb', digest } }), opts))).toBe(BundleErrorCode.ReadFailed)
  })

  it('picks up an edited policy file (a removed key stops loading)', async () => {
    const file = join(dir, 'p2.yaml')
    await writeFile(file, JSON.stringify(policyDoc([{ key }])))
    await expect(loadArtifact(def(), { ...opts, trustPolicy: file })).resolves.toBeTruthy()
    const other = newKey('ecdsa-p256', 'other')
    await writeFile(file, JSON.stringify(policyDoc([{ key: other }]) ) + '\n\n')
    expect(await refusedWith(loadArtifact(def(), { ...opts, trustPolicy: file }))).toBe(BundleErrorCode.UnknownSigner)
  })

  it('loads a native bundle only with an explicit native grant, into a private file', async () => {
    const src = new TextEncoder().encode('export const hello = 42\n')
    const file = await signedFromManifest(key, manifestFor('native', 'filter.mjs', src), new Map([['filter.mjs', src]]))
    await writeFile(join(dir, 'native.orb'), file)
    const d = def({ kind: 'native', config: undefined, bundle: { path: 'native.orb', digest: sha256Digest(file) } })
    expect(await refusedWith(loadArtifact(d, opts))).toBe(BundleErrorCode.KindNotAllowed)
    const nativeDir = join(dir, 'native')
    const a = await loadArtifact(d, { ...opts, nativeDir, trustPolicy: policyDoc([{ key }], { kinds: ['wasm', 'native'] }) })
    expect(a.entry).toBeDefined()
    expect(await readFile(a.entry as string, 'utf8')).toBe('export const hello = 42\n')
    expect((await stat(nativeDir)).mode & 0o777).toBe(0o700)
    const mod = (await import(a.entry as string)) as { hello: number }
    expect(mod.hello).toBe(42)
    // A shared (group/world-accessible) dir is refused: anyone who can write there could swap the module.
    const shared = join(dir, 'shared')
    await mkdir(shared, { mode: 0o777 })
    await chmod(shared, 0o777)
    expect(await refusedWith(loadArtifact(d, { ...opts, nativeDir: shared, trustPolicy: policyDoc([{ key }], { kinds: ['native'] }) }))).toBe(
      BundleErrorCode.NativeDirUnsafe,
    )
  })
})

describe('loadArtifact unsigned path', () => {
  it('refuses plain modules unless allowUnsigned, then says so', async () => {
    await writeFile(join(dir, 'plain.wasm'), wasm)
    const d = def({ bundle: undefined, module: 'plain.wasm' })
    expect(await refusedWith(loadArtifact(d, opts))).toBe(BundleErrorCode.UnsignedRefused)
    const lines: string[] = []
    const metrics = new MetricsRegistry()
    const log = createLogger({ write: (l) => lines.push(l) })
    const a = await loadArtifact(d, { ...opts, allowUnsigned: true, log, metrics })
    expect(a.unsigned).toBe(true)
    expect(lines.some((l) => l.includes('UNSIGNED'))).toBe(true)
  })

  it('announceUnsignedMode logs loudly and sets a gauge', () => {
    const lines: string[] = []
    const metrics = new MetricsRegistry()
    announceUnsignedMode(true, createLogger({ write: (l) => lines.push(l) }), metrics)
    expect(lines[0]).toContain('INSECURE')
    expect(metrics.gauge(UNSIGNED_MODE_METRIC, '').labels().get()).toBe(1)
    announceUnsignedMode(false, createLogger({ write: (l) => lines.push(l) }), metrics)
    expect(metrics.gauge(UNSIGNED_MODE_METRIC, '').labels().get()).toBe(0)
    expect(lines).toHaveLength(1)
  })
})

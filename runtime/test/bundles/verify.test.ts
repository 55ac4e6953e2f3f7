import { describe, expect, it } from 'vitest'
import { BundleErrorCode } from '../../src/bundles/errors.ts'
import { packBundle, unpackBundle } from '../../src/bundles/format.ts'
import { sha256Digest } from '../../src/bundles/digest.ts'
import { signBundle } from '../../src/bundles/sign.ts'
import { verifyBundle } from '../../src/bundles/verify.ts'
import { compileTrustPolicy } from '../../src/bundles/trust-policy.ts'
import { manifestFor, newKey, policyDoc, policyFor, proxyWasm, refusedWith, signedFromManifest, signedWasmBundle, wat } from './fixtures.ts'

/** Rewrites one entry of a bundle, keeping the rest (including the signature) as is. */
function tamper(file: Uint8Array, edit: (c: ReturnType<typeof unpackBundle>) => void): Uint8Array {
  const c = unpackBundle(file)
  const copy = { manifest: c.manifest.slice(), artifacts: new Map([...c.artifacts].map(([k, v]) => [k, v.slice()])), signature: c.signature }
  edit(copy)
  return packBundle(copy)
}

const key = newKey('ecdsa-p256', 'acme-1')
const wasm = await proxyWasm(['proxy_log', 'proxy_get_header_map_value'])
const good = await signedWasmBundle(key, wasm, { name: 'demo', capabilities: ['headers:read', 'log'] })
const policy = await policyFor(key)

describe('verifyBundle', () => {
  it('accepts a good bundle and reports identity, digests and needs', async () => {
    const v = await verifyBundle(good, policy, { expectedDigest: sha256Digest(good) })
    expect(v.manifest.name).toBe('demo')
    expect(v.signer).toMatchObject({ keyId: 'acme-1', publisher: 'acme' })
    expect(v.digest).toBe(sha256Digest(good))
    expect(v.neededCapabilities).toEqual(['headers:read', 'log'])
    expect(v.entry).toEqual(wasm)
  })

  it('works with Ed25519 keys', async () => {
    const ed = newKey('ed25519', 'ed-1')
    const file = await signedWasmBundle(ed, wasm, { capabilities: ['headers:read', 'log'] })
    await expect(verifyBundle(file, await policyFor(ed))).resolves.toBeTruthy()
  })

  it('refuses a tampered manifest', async () => {
    const bad = tamper(good, (c) => {
      c.manifest = new TextEncoder().encode(new TextDecoder().decode(c.manifest).replace('"1.0.0"', '"1.0.1"'))
    })
    expect(await refusedWith(verifyBundle(bad, policy))).toBe(BundleErrorCode.ManifestDigestMismatch)
  })

  it('refuses a tampered artifact', async () => {
    const bad = tamper(good, (c) => {
      const a = c.artifacts.get('filter.wasm') as Uint8Array
      a[a.length - 1] ^= 1
    })
    expect(await refusedWith(verifyBundle(bad, policy))).toBe(BundleErrorCode.ArtifactDigestMismatch)
  })

  it('refuses an artifact swapped in from another signed bundle', async () => {
    const other = await signedWasmBundle(key, await proxyWasm(['proxy_log', 'proxy_get_header_map_value'], 7), {
      name: 'demo',
      capabilities: ['headers:read', 'log'],
    })
    const swapped = tamper(good, (c) => c.artifacts.set('filter.wasm', unpackBundle(other).artifacts.get('filter.wasm') as Uint8Array))
    expect(await refusedWith(verifyBundle(swapped, policy))).toBe(BundleErrorCode.ArtifactDigestMismatch)
    // Manifest and artifact both from the other bundle, our signature: the manifest is not the signed one.
    const both = tamper(good, (c) => {
      const o = unpackBundle(other)
      c.manifest = o.manifest
      c.artifacts = o.artifacts
    })
    expect(await refusedWith(verifyBundle(both, policy))).toBe(BundleErrorCode.ManifestDigestMismatch)
  })

  it('refuses a signature made with the wrong key under a trusted key id', async () => {
    const impostor = newKey('ecdsa-p256', 'acme-1')
    const forged = await signBundle(good, impostor)
    expect(await refusedWith(verifyBundle(forged, policy))).toBe(BundleErrorCode.SignatureInvalid)
  })

  it('refuses an unknown signer', async () => {
    const stranger = await signBundle(good, newKey('ecdsa-p256', 'stranger'))
    expect(await refusedWith(verifyBundle(stranger, policy))).toBe(BundleErrorCode.UnknownSigner)
  })

  it('refuses a signer not allowed for the kind; native needs an explicit grant', async () => {
    const js = new TextEncoder().encode('export default {}')
    const native = await signedFromManifest(key, manifestFor('native', 'filter.mjs', js), new Map([['filter.mjs', js]]))
    expect(await refusedWith(verifyBundle(native, policy))).toBe(BundleErrorCode.KindNotAllowed)
    expect(await refusedWith(verifyBundle(good, await policyFor(key, { kinds: ['quickjs'] })))).toBe(BundleErrorCode.KindNotAllowed)
    await expect(verifyBundle(native, await policyFor(key, { kinds: ['native'] }))).resolves.toBeTruthy()
  })

  it('refuses names outside the publisher patterns', async () => {
    expect(await refusedWith(verifyBundle(good, await policyFor(key, { names: ['@acme/*'] })))).toBe(BundleErrorCode.NameNotAllowed)
    await expect(verifyBundle(good, await policyFor(key, { names: ['de*'] }))).resolves.toBeTruthy()
  })

  it('refuses capabilities and quotas beyond what the publisher may grant', async () => {
    expect(await refusedWith(verifyBundle(good, await policyFor(key, { maxCapabilities: ['log'] })))).toBe(BundleErrorCode.CapabilityNotAllowed)
    const big = await signedWasmBundle(key, wasm, { capabilities: ['headers:read', 'log'], quotas: { default: {}, maximum: { fuel: 10_000_000 } } })
    expect(await refusedWith(verifyBundle(big, await policyFor(key, { maxQuotas: { fuel: 1000 } })))).toBe(BundleErrorCode.QuotaNotAllowed)
    const v = await verifyBundle(good, await policyFor(key, { maxQuotas: { fuel: 1000 } }))
    expect(v.maxQuotas.fuel).toBe(1000)
  })

  it('refuses expired and not-yet-valid keys', async () => {
    const expired = await compileTrustPolicy(policyDoc([{ key, notAfter: '2020-01-01T00:00:00Z' }]))
    expect(await refusedWith(verifyBundle(good, expired))).toBe(BundleErrorCode.KeyExpired)
    const future = await compileTrustPolicy(policyDoc([{ key, notBefore: '2999-01-01T00:00:00Z' }]))
    expect(await refusedWith(verifyBundle(good, future))).toBe(BundleErrorCode.KeyNotYetValid)
    await expect(verifyBundle(good, future, { now: new Date('2999-06-01T00:00:00Z') })).resolves.toBeTruthy()
    // A publisher-wide window narrows every key.
    const pubExpired = await compileTrustPolicy(policyDoc([{ key }], { notAfter: '2021-01-01T00:00:00Z' }))
    expect(await refusedWith(verifyBundle(good, pubExpired))).toBe(BundleErrorCode.KeyExpired)
  })

  it('refuses truncated bundle files at every length', async () => {
    const codes = new Set<string>()
    for (let n = 0; n < good.length; n += n < 64 ? 1 : 97) codes.add(await refusedWith(verifyBundle(good.subarray(0, n), policy)))
    expect([...codes].sort()).toEqual([BundleErrorCode.Malformed, BundleErrorCode.Truncated].sort())
    expect(await refusedWith(verifyBundle(good.subarray(0, good.length - 1), policy))).toBe(BundleErrorCode.Truncated)
  })

  it('refuses garbage and trailing bytes', async () => {
    expect(await refusedWith(verifyBundle(new TextEncoder().encode('hello, not a bundle'), policy))).toBe(BundleErrorCode.Malformed)
    const trailing = new Uint8Array(good.length + 1)
    trailing.set(good)
    expect(await refusedWith(verifyBundle(trailing, policy))).toBe(BundleErrorCode.Malformed)
  })

  it('refuses a manifest that lies about capabilities', async () => {
    // Imports proxy_send_local_response and proxy_http_call, manifest requests only headers:read.
    const liar = await proxyWasm(['proxy_get_header_map_value', 'proxy_send_local_response', 'proxy_http_call'])
    const m = manifestFor('wasm', 'filter.wasm', liar, { capabilities: ['headers:read'] })
    const file = await signedFromManifest(key, m, new Map([['filter.wasm', liar]]))
    expect(await refusedWith(verifyBundle(file, policy))).toBe(BundleErrorCode.CapabilitiesExceedManifest)
  })

  it('refuses a module importing what no host provides', async () => {
    const evil = await wat('(module (import "env" "evil_syscall" (func)) (func (export "proxy_abi_version_0_2_1")))')
    const file = await signedFromManifest(key, manifestFor('wasm', 'filter.wasm', evil), new Map([['filter.wasm', evil]]))
    expect(await refusedWith(verifyBundle(file, policy))).toBe(BundleErrorCode.UnknownImport)
  })

  it('refuses an invalid module and an unsigned bundle', async () => {
    const junk = Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 99)
    const file = await signedFromManifest(key, manifestFor('wasm', 'filter.wasm', junk), new Map([['filter.wasm', junk]]))
    expect(await refusedWith(verifyBundle(file, policy))).toBe(BundleErrorCode.ModuleInvalid)
    const c = unpackBundle(good)
    const unsigned = packBundle({ manifest: c.manifest, artifacts: c.artifacts })
    expect(await refusedWith(verifyBundle(unsigned, policy))).toBe(BundleErrorCode.SignatureMissing)
  })

  it('refuses a malformed signature entry and a foreign DSSE payload', async () => {
    const bad = tamper(good, (c) => {
      c.signature = new TextEncoder().encode('{"mediaType":"nope"}')
    })
    expect(await refusedWith(verifyBundle(bad, policy))).toBe(BundleErrorCode.SignatureMalformed)
  })

  it('refuses a wrong digest pin', async () => {
    expect(await refusedWith(verifyBundle(good, policy, { expectedDigest: sha256Digest('x') }))).toBe(BundleErrorCode.DigestMismatch)
    expect(await refusedWith(verifyBundle(good, policy, { expectedDigest: 'md5:abc' }))).toBe(BundleErrorCode.DigestMismatch)
  })
})

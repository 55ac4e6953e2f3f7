import { describe, expect, it } from 'vitest'
import { BundleErrorCode } from '../../src/bundles/errors.ts'
import { compileTrustPolicy, globToRegExp } from '../../src/bundles/trust-policy.ts'
import { verifyBundle } from '../../src/bundles/verify.ts'
import { newKey, proxyWasm, refusedWith, signedWasmBundle } from './fixtures.ts'

const a = newKey('ecdsa-p256', 'a-1')
const b = newKey('ed25519', 'a-2')
const pem = a.publicKeyPem

describe('trust policy', () => {
  it('refuses malformed policies with policy_invalid', async () => {
    const bad: unknown[] = [
      null,
      { version: 2, publishers: [] },
      { version: 1, publishers: [{ name: 'x', keys: [] }] },
      { version: 1, publishers: [{ name: 'x', keys: [{ keyId: 'k' }] }] },
      { version: 1, publishers: [{ name: 'x', keys: [{ keyId: 'k', publicKey: pem, publicKeyFile: 'k.pem' }] }] },
      { version: 1, publishers: [{ name: 'x', keys: [{ keyId: 'k', publicKey: 'not a key' }] }] },
      { version: 1, publishers: [{ name: 'x', keys: [{ keyId: 'k', publicKey: pem, notAfter: 'someday' }] }] },
      { version: 1, publishers: [{ name: 'x', keys: [{ keyId: 'k', publicKey: pem }] }, { name: 'y', keys: [{ keyId: 'k', publicKey: pem }] }] },
      { version: 1, publishers: [{ name: 'x', keys: [{ keyId: 'k', publicKey: pem }] }, { name: 'x', keys: [{ keyId: 'j', publicKey: pem }] }] },
      { version: 1, publishers: [{ name: 'x', keys: [{ keyId: 'k', publicKey: pem }], identities: [{ issuer: 'ca' }] }] },
      { version: 1, publishers: [{ name: 'x', keys: [{ keyId: 'k', publicKey: pem }], kinds: ['rust'] }] },
      { version: 1, publishers: [{ name: 'x', keys: [{ keyId: 'k', publicKey: pem }], surprise: true }] },
    ]
    for (const doc of bad) expect(await refusedWith(compileTrustPolicy(doc)), JSON.stringify(doc)?.slice(0, 80)).toBe(BundleErrorCode.PolicyInvalid)
  })

  it('trusts every key of a publisher (rotation) and narrows windows per key', async () => {
    const policy = await compileTrustPolicy({
      version: 1,
      publishers: [
        {
          name: 'acme',
          keys: [
            { keyId: 'a-1', publicKey: a.publicKeyPem, notAfter: '2030-01-01T00:00:00Z' },
            { keyId: 'a-2', publicKey: b.publicKeyPem, notBefore: '2026-01-01T00:00:00Z' },
          ],
        },
      ],
    })
    const wasm = await proxyWasm(['proxy_log'])
    const byA = await signedWasmBundle(a, wasm)
    const byB = await signedWasmBundle(b, wasm)
    const mid = new Date('2027-01-01T00:00:00Z')
    expect((await verifyBundle(byA, policy, { now: mid })).signer.keyId).toBe('a-1')
    expect((await verifyBundle(byB, policy, { now: mid })).signer.keyId).toBe('a-2')
    expect(await refusedWith(verifyBundle(byA, policy, { now: new Date('2031-01-01T00:00:00Z') }))).toBe(BundleErrorCode.KeyExpired)
    expect(await refusedWith(verifyBundle(byB, policy, { now: new Date('2025-01-01T00:00:00Z') }))).toBe(BundleErrorCode.KeyNotYetValid)
  })

  it('matches names with anchored globs', () => {
    expect(globToRegExp('@acme/*').test('@acme/waf')).toBe(true)
    expect(globToRegExp('@acme/*').test('@evil/acme')).toBe(false)
    expect(globToRegExp('acme-*').test('xacme-1')).toBe(false)
    expect(globToRegExp('a.b').test('axb')).toBe(false)
    expect(globToRegExp('*').test('@any/thing')).toBe(true)
  })
})

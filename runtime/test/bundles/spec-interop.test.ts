// Writes a bundle by hand from docs/bundle-format.md alone (no pack/sign code of ours), to keep
// the spec honest: if this stops verifying, either the spec or the code drifted.
import { createHash, generateKeyPairSync, sign } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { verifyBundle } from '../../src/bundles/verify.ts'
import { compileTrustPolicy } from '../../src/bundles/trust-policy.ts'
import { proxyWasm } from './fixtures.ts'

const hex = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex')

function entry(name: string, data: Uint8Array): Buffer {
  const n = Buffer.from(name, 'utf8')
  const head = Buffer.alloc(2 + n.length + 4)
  head.writeUInt16BE(n.length, 0)
  n.copy(head, 2)
  head.writeUInt32BE(data.length, 2 + n.length)
  return Buffer.concat([head, data])
}

describe('bundle written from the spec', () => {
  it('verifies with the reference verifier', async () => {
    const wasm = await proxyWasm(['proxy_log'])
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 1,
        name: 'hand-made',
        version: '2.0.0-rc.1',
        kind: 'wasm',
        abi: 'proxy-wasm/0.2.1',
        entry: 'filter.wasm',
        artifacts: [{ path: 'filter.wasm', digest: `sha256:${hex(wasm)}`, size: wasm.length }],
        capabilities: ['log'],
        quotas: { default: {}, maximum: {} },
        tools: { 'hand-written': '1' },
      }),
    )
    const statement = Buffer.from(
      JSON.stringify({
        _type: 'https://in-toto.io/Statement/v1',
        subject: [
          { name: 'manifest.json', digest: { sha256: hex(manifest) } },
          { name: 'artifacts/filter.wasm', digest: { sha256: hex(wasm) } },
        ],
        predicateType: 'https://omnirelay.dev/bundle/v1',
        predicate: { name: 'hand-made', version: '2.0.0-rc.1', kind: 'wasm', keyId: 'hand-1', signedAt: new Date().toISOString() },
      }),
    )
    const type = 'application/vnd.in-toto+json'
    const pae = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${type} ${statement.length} `), statement])
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const sig = sign('sha256', pae, privateKey)
    const sigstore = Buffer.from(
      JSON.stringify({
        mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
        verificationMaterial: { publicKey: { hint: 'hand-1' }, tlogEntries: [], timestampVerificationData: {} },
        dsseEnvelope: { payload: statement.toString('base64'), payloadType: type, signatures: [{ sig: sig.toString('base64'), keyid: 'hand-1' }] },
      }),
    )
    const header = Buffer.alloc(16)
    Buffer.from([0x89, 0x4f, 0x52, 0x42, 0x0d, 0x0a, 0x1a, 0x0a]).copy(header, 0)
    header.writeUInt32BE(1, 8)
    header.writeUInt32BE(3, 12)
    const file = Buffer.concat([header, entry('manifest.json', manifest), entry('artifacts/filter.wasm', wasm), entry('signature.sigstore.json', sigstore)])

    const policy = await compileTrustPolicy({
      version: 1,
      publishers: [{ name: 'hand', keys: [{ keyId: 'hand-1', publicKey: publicKey.export({ type: 'spki', format: 'pem' }) as string }] }],
    })
    const v = await verifyBundle(new Uint8Array(file), policy, { expectedDigest: hex(file) })
    expect(v.manifest.version).toBe('2.0.0-rc.1')
    expect(v.signer.publisher).toBe('hand')
  })
})

// Flips every byte of a small signed bundle, one at a time: verification either refuses with a
// known code or accepts a file whose signed contents (manifest and artifacts) are exactly the
// original ones. It never crashes and never accepts changed code.
import { describe, expect, it } from 'vitest'
import { ArtifactError, BundleErrorCode } from '../../src/bundles/errors.ts'
import { verifyBundle } from '../../src/bundles/verify.ts'
import { newKey, policyFor, proxyWasm, signedWasmBundle } from './fixtures.ts'

const codes = new Set<string>(Object.values(BundleErrorCode))

describe('single-byte tamper sweep', () => {
  it('never accepts changed manifest or artifact bytes', async () => {
    const key = newKey('ed25519', 'sweep')
    const wasm = await proxyWasm(['proxy_log'])
    const file = await signedWasmBundle(key, wasm, { name: 'sweep' })
    const policy = await policyFor(key)
    const original = await verifyBundle(file, policy)
    const seen = new Map<string, number>()
    let accepted = 0
    for (let at = 0; at < file.length; at++) {
      const m = file.slice()
      m[at] ^= 0x01
      try {
        const v = await verifyBundle(m, policy)
        accepted++
        expect(v.contents.manifest).toEqual(original.contents.manifest)
        expect(v.entry).toEqual(wasm)
      } catch (e) {
        if (!(e instanceof ArtifactError) || !codes.has(e.code)) throw e
        seen.set(e.code, (seen.get(e.code) ?? 0) + 1)
      }
    }
    // Flips land in every part of the file, so the refusals name many different reasons.
    for (const c of [BundleErrorCode.Malformed, BundleErrorCode.ManifestDigestMismatch, BundleErrorCode.ArtifactDigestMismatch, BundleErrorCode.SignatureMalformed]) {
      expect(seen.get(c), c).toBeGreaterThan(0)
    }
    // Only unsigned Sigstore JSON metadata (e.g. an ignored property name) may change harmlessly.
    expect(accepted).toBeLessThan(file.length / 10)
  })
})

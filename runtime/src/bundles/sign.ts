/**
 * Signing a bundle offline with a publisher key: a DSSE envelope over the in-toto statement,
 * packaged as a Sigstore bundle v0.3 (no transparency log, no timestamp authority).
 */
import { sign as cryptoSign } from 'node:crypto'
import { DSSEBundleBuilder, type Signer } from '@sigstore/sign'
import { bundleToJSON } from '@sigstore/bundle'
import { packBundle, unpackBundle } from './format.ts'
import type { SigningKey } from './keys.ts'
import { checkArtifactsMatchManifest, parseManifest } from './manifest.ts'
import { buildStatement, IN_TOTO_PAYLOAD_TYPE } from './statement.ts'

function signerFor(key: SigningKey): Signer {
  return {
    sign: async (data: Buffer) => ({
      signature: cryptoSign(key.algorithm === 'ed25519' ? null : 'sha256', data, key.privateKey),
      key: { $case: 'publicKey', publicKey: key.publicKeyPem, hint: key.keyId },
    }),
  }
}

/**
 * Signs a bundle file (signed or not: an existing signature is replaced) and returns the
 * signed file. Checks the manifest and artifact digests first, so nothing inconsistent is
 * ever signed.
 *
 * @example
 * const signed = await signBundle(await readFile('filter.orb'), await readSigningKey('dev.key.json'))
 */
export async function signBundle(file: Uint8Array, key: SigningKey, now: Date = new Date()): Promise<Uint8Array> {
  const contents = unpackBundle(file)
  const manifest = parseManifest(contents.manifest)
  checkArtifactsMatchManifest(contents.artifacts, manifest.artifacts)
  const statement = buildStatement(contents, manifest, key.keyId, now)
  const bundle = await new DSSEBundleBuilder({ signer: signerFor(key), witnesses: [] }).create({
    data: Buffer.from(JSON.stringify(statement)),
    type: IN_TOTO_PAYLOAD_TYPE,
  })
  const signature = new TextEncoder().encode(JSON.stringify(bundleToJSON(bundle)))
  return packBundle({ manifest: contents.manifest, artifacts: contents.artifacts, signature })
}

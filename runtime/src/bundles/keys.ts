/**
 * Publisher signing keys: generation, files, key ids. ECDSA P-256 or Ed25519.
 *
 * A private key file is JSON (written 0600) so it carries its key id hint and algorithm;
 * the public key is a plain SPKI PEM file, which is what trust policies embed.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { sha256Digest } from './digest.ts'
import { ArtifactError, BundleErrorCode } from './errors.ts'

export const KEY_ALGORITHMS = ['ecdsa-p256', 'ed25519'] as const
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number]

export const PRIVATE_KEY_FILE_TYPE = 'omnirelay-signing-key'

export interface SigningKey {
  keyId: string
  algorithm: KeyAlgorithm
  privateKey: KeyObject
  publicKey: KeyObject
  /** SPKI PEM of the public key. */
  publicKeyPem: string
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/

/** Whether `id` is a usable key id hint (it travels in the Sigstore bundle and the policy). */
export function isKeyId(id: string): boolean {
  return KEY_ID.test(id)
}

/** `sha256:<hex>` of the public key's SPKI DER: a fingerprint that does not depend on the hint. */
export function keyFingerprint(publicKey: KeyObject): string {
  return sha256Digest(publicKey.export({ type: 'spki', format: 'der' }))
}

/** The algorithm of a public or private key, or undefined when it is not one we sign with. */
export function keyAlgorithm(key: KeyObject): KeyAlgorithm | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa-p256'
  return undefined
}

/**
 * Generates a key pair. Without `keyId` the id is `<prefix>-<first 16 hex of the fingerprint>`.
 *
 * @example
 * const key = generateSigningKey('ed25519', 'acme-2026')
 */
export function generateSigningKey(algorithm: KeyAlgorithm = 'ecdsa-p256', keyId?: string): SigningKey {
  const pair = algorithm === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const id = keyId ?? `key-${keyFingerprint(pair.publicKey).slice(7, 23)}`
  if (!isKeyId(id)) throw new ArtifactError(BundleErrorCode.KeyInvalid, `invalid key id "${id}"`)
  return {
    keyId: id,
    algorithm,
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
  }
}

/** Writes `<base>.key.json` (0600) and `<base>.pub.pem`; refuses to overwrite unless `force`. */
export async function writeKeyFiles(key: SigningKey, base: string, force = false): Promise<{ privateFile: string; publicFile: string }> {
  const privateFile = `${base}.key.json`
  const publicFile = `${base}.pub.pem`
  const body = {
    type: PRIVATE_KEY_FILE_TYPE,
    version: 1,
    keyId: key.keyId,
    algorithm: key.algorithm,
    privateKey: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  }
  const flag = force ? 'w' : 'wx'
  await writeFile(privateFile, JSON.stringify(body, null, 2) + '\n', { mode: 0o600, flag })
  // An overwritten file keeps its old mode: force it.
  await chmod(privateFile, 0o600)
  await writeFile(publicFile, key.publicKeyPem, { mode: 0o644, flag })
  return { privateFile, publicFile }
}

/**
 * Reads a private key: our JSON key file, or a PKCS#8 PEM file (then `keyId` is required).
 */
export async function readSigningKey(file: string, keyId?: string): Promise<SigningKey> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.KeyInvalid, `cannot read key file ${file}`, { cause: e })
  }
  return parseSigningKey(text, keyId)
}

/** Parses private key text (see `readSigningKey`). */
export function parseSigningKey(text: string, keyIdOverride?: string): SigningKey {
  let pem = text
  let id = keyIdOverride
  if (text.trimStart().startsWith('{')) {
    let obj: { type?: unknown; keyId?: unknown; privateKey?: unknown }
    try {
      obj = JSON.parse(text)
    } catch (e) {
      throw new ArtifactError(BundleErrorCode.KeyInvalid, 'key file is not valid JSON', { cause: e })
    }
    if (obj.type !== PRIVATE_KEY_FILE_TYPE || typeof obj.privateKey !== 'string' || typeof obj.keyId !== 'string') {
      throw new ArtifactError(BundleErrorCode.KeyInvalid, `key file is not an ${PRIVATE_KEY_FILE_TYPE} file`)
    }
    pem = obj.privateKey
    id ??= obj.keyId
  }
  if (id === undefined) throw new ArtifactError(BundleErrorCode.KeyInvalid, 'a PEM private key needs a key id')
  if (!isKeyId(id)) throw new ArtifactError(BundleErrorCode.KeyInvalid, `invalid key id "${id}"`)
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(pem)
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.KeyInvalid, 'not a private key', { cause: e })
  }
  const algorithm = keyAlgorithm(privateKey)
  if (!algorithm) throw new ArtifactError(BundleErrorCode.KeyInvalid, 'key must be ECDSA P-256 or Ed25519')
  const publicKey = createPublicKey(privateKey)
  return { keyId: id, algorithm, privateKey, publicKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string }
}

/** Parses a public key PEM (SPKI); only ECDSA P-256 and Ed25519 are accepted. */
export function parsePublicKey(pem: string): KeyObject {
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.KeyInvalid, 'not a public key', { cause: e })
  }
  if (!keyAlgorithm(key)) throw new ArtifactError(BundleErrorCode.KeyInvalid, 'public key must be ECDSA P-256 or Ed25519')
  return key
}

/**
 * The signed statement: an in-toto Statement v1 whose subjects are the manifest and every
 * artifact, by sha256. sigstore-js verifies the DSSE signature but never looks inside the
 * payload, so binding the subjects to the bytes in the file is done here.
 */
import { ArtifactError, BundleErrorCode } from './errors.ts'
import { ARTIFACT_PREFIX, MANIFEST_ENTRY, type BundleContents } from './format.ts'
import { sha256Hex } from './digest.ts'
import type { BundleManifest } from './manifest.ts'

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json'
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1'
export const PREDICATE_TYPE = 'https://omnirelay.dev/bundle/v1'

export interface Subject {
  name: string
  digest: { sha256: string }
}

export interface BundleStatement {
  _type: typeof STATEMENT_TYPE
  subject: Subject[]
  predicateType: typeof PREDICATE_TYPE
  predicate: {
    name: string
    version: string
    kind: BundleManifest['kind']
    /** The key id hint the publisher signed with (informational; the envelope carries the real one). */
    keyId: string
    /** Publisher's clock at signing time; not trusted for validity decisions. */
    signedAt: string
  }
}

/** The subjects a bundle's statement must list, in file order. */
export function subjectsOf(contents: BundleContents): Subject[] {
  const out: Subject[] = [{ name: MANIFEST_ENTRY, digest: { sha256: sha256Hex(contents.manifest) } }]
  for (const [path, data] of contents.artifacts) out.push({ name: ARTIFACT_PREFIX + path, digest: { sha256: sha256Hex(data) } })
  return out
}

export function buildStatement(contents: BundleContents, manifest: BundleManifest, keyId: string, now: Date): BundleStatement {
  return {
    _type: STATEMENT_TYPE,
    subject: subjectsOf(contents),
    predicateType: PREDICATE_TYPE,
    predicate: { name: manifest.name, version: manifest.version, kind: manifest.kind, keyId, signedAt: now.toISOString() },
  }
}

/**
 * Checks a verified DSSE payload against the file: right payload type, statement and
 * predicate types, and subjects equal — as a set, no extras, no missing — to the manifest and
 * artifacts actually present. Returns the statement.
 */
export function checkStatement(payloadType: string, payload: Uint8Array, contents: BundleContents): BundleStatement {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new ArtifactError(BundleErrorCode.StatementInvalid, `DSSE payload type "${payloadType}" is not in-toto`)
  }
  let st: Partial<BundleStatement>
  try {
    st = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload))
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.StatementInvalid, 'statement is not JSON', { cause: e })
  }
  if (typeof st !== 'object' || st === null || st._type !== STATEMENT_TYPE || st.predicateType !== PREDICATE_TYPE) {
    throw new ArtifactError(BundleErrorCode.StatementInvalid, 'not an OmniRelay bundle statement')
  }
  if (!Array.isArray(st.subject) || typeof st.predicate !== 'object' || st.predicate === null) {
    throw new ArtifactError(BundleErrorCode.StatementInvalid, 'statement lacks subjects or predicate')
  }
  const signed = new Map<string, string>()
  for (const s of st.subject as unknown[]) {
    const sub = s as Partial<Subject> | null
    const hex = sub?.digest?.sha256
    if (typeof sub?.name !== 'string' || typeof hex !== 'string' || signed.has(sub.name)) {
      throw new ArtifactError(BundleErrorCode.StatementInvalid, 'malformed or duplicate subject')
    }
    signed.set(sub.name, hex.toLowerCase())
  }
  const actual = subjectsOf(contents)
  const manifestSigned = signed.get(MANIFEST_ENTRY)
  if (manifestSigned !== actual[0].digest.sha256) {
    throw new ArtifactError(BundleErrorCode.ManifestDigestMismatch, 'the manifest is not the one that was signed')
  }
  for (let i = 1; i < actual.length; i++) {
    const { name, digest } = actual[i]
    const want = signed.get(name)
    if (want === undefined) throw new ArtifactError(BundleErrorCode.SubjectMismatch, `artifact "${name}" was not signed`)
    if (want !== digest.sha256) throw new ArtifactError(BundleErrorCode.ArtifactDigestMismatch, `artifact "${name}" differs from the signed one`)
  }
  if (signed.size !== actual.length) {
    throw new ArtifactError(BundleErrorCode.SubjectMismatch, 'the signature covers artifacts that are not in the bundle')
  }
  return st as BundleStatement
}

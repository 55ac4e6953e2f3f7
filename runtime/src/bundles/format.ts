/**
 * The bundle container: one self-contained file holding the manifest, the artifacts and the
 * Sigstore bundle, in a fixed order. The layout is specified in docs/bundle-format.md; this
 * file is the only reader and writer of it.
 *
 * Layout (all integers big-endian):
 *   magic   8 bytes  89 4F 52 42 0D 0A 1A 0A   ("\x89ORB\r\n\x1a\n", PNG-style: catches text-mode mangling)
 *   version u32      1
 *   count   u32      number of entries (2..64)
 *   entries count × { nameLen u16, name UTF-8, dataLen u32, data }
 * Entries: `manifest.json` first, then `artifacts/<path>` in manifest order, then optionally
 * `signature.sigstore.json` last. Nothing may follow the last entry.
 */
import { ArtifactError, BundleErrorCode } from './errors.ts'

export const MAGIC = Uint8Array.of(0x89, 0x4f, 0x52, 0x42, 0x0d, 0x0a, 0x1a, 0x0a)
export const FORMAT_VERSION = 1
export const MANIFEST_ENTRY = 'manifest.json'
export const SIGNATURE_ENTRY = 'signature.sigstore.json'
export const ARTIFACT_PREFIX = 'artifacts/'
/** File extension used by the tooling (the format does not depend on it). */
export const BUNDLE_EXTENSION = '.orb'

export const LIMITS = {
  maxEntries: 64,
  maxNameBytes: 255,
  maxManifestBytes: 1 << 20,
  maxSignatureBytes: 1 << 20,
  /** Default cap on a whole bundle file; callers may lower or raise it. */
  maxBundleBytes: 64 << 20,
} as const

/** What a bundle file holds, undecoded: the exact bytes that were (or will be) signed. */
export interface BundleContents {
  /** The manifest entry's exact bytes (its sha256 is the manifest digest). */
  manifest: Uint8Array
  /** Artifacts by their manifest path (without the `artifacts/` prefix), in file order. */
  artifacts: Map<string, Uint8Array>
  /** The Sigstore bundle JSON bytes; absent in an unsigned (just built) bundle. */
  signature?: Uint8Array
}

const ARTIFACT_PATH = /^[A-Za-z0-9_][A-Za-z0-9._-]*(\/[A-Za-z0-9_][A-Za-z0-9._-]*)*$/

/** Whether `path` may name an artifact: relative, `/`-separated, no `..`, no empty parts. */
export function isArtifactPath(path: string): boolean {
  return path.length > 0 && path.length <= LIMITS.maxNameBytes - ARTIFACT_PREFIX.length && ARTIFACT_PATH.test(path)
}

/**
 * Writes a bundle file.
 *
 * @example
 * const file = packBundle({ manifest: manifestBytes, artifacts: new Map([['filter.wasm', wasm]]) })
 */
export function packBundle(contents: BundleContents): Uint8Array {
  const enc = new TextEncoder()
  const entries: [Uint8Array, Uint8Array][] = [[enc.encode(MANIFEST_ENTRY), contents.manifest]]
  for (const [path, data] of contents.artifacts) {
    if (!isArtifactPath(path)) throw new ArtifactError(BundleErrorCode.Malformed, `invalid artifact path "${path}"`)
    entries.push([enc.encode(ARTIFACT_PREFIX + path), data])
  }
  if (contents.signature) entries.push([enc.encode(SIGNATURE_ENTRY), contents.signature])
  if (entries.length > LIMITS.maxEntries) throw new ArtifactError(BundleErrorCode.Malformed, 'too many entries')
  let size = MAGIC.length + 8
  for (const [name, data] of entries) size += 2 + name.length + 4 + data.length
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  out.set(MAGIC, 0)
  view.setUint32(8, FORMAT_VERSION)
  view.setUint32(12, entries.length)
  let at = 16
  for (const [name, data] of entries) {
    view.setUint16(at, name.length)
    out.set(name, at + 2)
    at += 2 + name.length
    view.setUint32(at, data.length)
    out.set(data, at + 4)
    at += 4 + data.length
  }
  return out
}

/**
 * Reads a bundle file. Checks structure only (no digests, no signature). Never throws
 * anything but an ArtifactError, whatever the bytes.
 */
export function unpackBundle(file: Uint8Array, maxBytes: number = LIMITS.maxBundleBytes): BundleContents {
  if (file.length > maxBytes) {
    throw new ArtifactError(BundleErrorCode.TooLarge, `bundle is ${file.length} bytes, limit ${maxBytes}`)
  }
  if (file.length < MAGIC.length) {
    throw new ArtifactError(isMagicPrefix(file) ? BundleErrorCode.Truncated : BundleErrorCode.Malformed, 'not a bundle file')
  }
  for (let i = 0; i < MAGIC.length; i++) {
    if (file[i] !== MAGIC[i]) throw new ArtifactError(BundleErrorCode.Malformed, 'not a bundle file (bad magic)')
  }
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  const need = (at: number, n: number, what: string): void => {
    if (at + n > file.length) throw new ArtifactError(BundleErrorCode.Truncated, `bundle truncated in ${what}`)
  }
  need(8, 8, 'header')
  const version = view.getUint32(8)
  if (version !== FORMAT_VERSION) {
    throw new ArtifactError(BundleErrorCode.UnsupportedFormat, `bundle format version ${version} is not supported`)
  }
  const count = view.getUint32(12)
  if (count < 2 || count > LIMITS.maxEntries) throw new ArtifactError(BundleErrorCode.Malformed, `bad entry count ${count}`)
  const dec = new TextDecoder('utf-8', { fatal: true })
  const names = new Set<string>()
  const artifacts = new Map<string, Uint8Array>()
  let manifest: Uint8Array | undefined
  let signature: Uint8Array | undefined
  let at = 16
  for (let i = 0; i < count; i++) {
    need(at, 2, 'entry name length')
    const nameLen = view.getUint16(at)
    at += 2
    if (nameLen === 0 || nameLen > LIMITS.maxNameBytes) throw new ArtifactError(BundleErrorCode.Malformed, 'bad entry name length')
    need(at, nameLen, 'entry name')
    let name: string
    try {
      name = dec.decode(file.subarray(at, at + nameLen))
    } catch {
      throw new ArtifactError(BundleErrorCode.Malformed, 'entry name is not UTF-8')
    }
    at += nameLen
    need(at, 4, 'entry length')
    const dataLen = view.getUint32(at)
    at += 4
    need(at, dataLen, `entry "${name}"`)
    const data = file.subarray(at, at + dataLen)
    at += dataLen
    if (names.has(name)) throw new ArtifactError(BundleErrorCode.Malformed, `duplicate entry "${name}"`)
    names.add(name)
    if (i === 0) {
      if (name !== MANIFEST_ENTRY) throw new ArtifactError(BundleErrorCode.Malformed, `first entry must be ${MANIFEST_ENTRY}`)
      if (dataLen > LIMITS.maxManifestBytes) throw new ArtifactError(BundleErrorCode.Malformed, 'manifest too large')
      manifest = data
    } else if (name === SIGNATURE_ENTRY) {
      if (i !== count - 1) throw new ArtifactError(BundleErrorCode.Malformed, `${SIGNATURE_ENTRY} must be the last entry`)
      if (dataLen > LIMITS.maxSignatureBytes) throw new ArtifactError(BundleErrorCode.Malformed, 'signature too large')
      signature = data
    } else if (name.startsWith(ARTIFACT_PREFIX) && isArtifactPath(name.slice(ARTIFACT_PREFIX.length))) {
      artifacts.set(name.slice(ARTIFACT_PREFIX.length), data)
    } else {
      throw new ArtifactError(BundleErrorCode.Malformed, `unexpected entry "${name}"`)
    }
  }
  if (at !== file.length) throw new ArtifactError(BundleErrorCode.Malformed, `${file.length - at} trailing bytes after the last entry`)
  if (!manifest) throw new ArtifactError(BundleErrorCode.Malformed, 'no manifest')
  if (artifacts.size === 0) throw new ArtifactError(BundleErrorCode.Malformed, 'no artifacts')
  return signature ? { manifest, artifacts, signature } : { manifest, artifacts }
}

function isMagicPrefix(file: Uint8Array): boolean {
  if (file.length === 0) return false
  for (let i = 0; i < file.length; i++) if (file[i] !== MAGIC[i]) return false
  return true
}

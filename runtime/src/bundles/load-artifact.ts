/**
 * Turns a filter definition into verified module bytes. This is the only place the host
 * reads filter code from disk: signed bundles are verified here before anything loads.
 */
import { lstat, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from '../observability/logger.ts'
import type { MetricsRegistry } from '../observability/metrics.ts'
import type { Capability, FilterDefinition, LoadedArtifact, Quotas } from '../pipeline/filter.ts'
import { sha256Hex } from './digest.ts'
import { ArtifactError, BundleErrorCode } from './errors.ts'
import { newAjv, type BundleManifest } from './manifest.ts'
import { compileTrustPolicy, loadTrustPolicy, type TrustPolicy, type TrustPolicyDocument } from './trust-policy.ts'
import { assertNotRevoked, type RevocationCheck } from './revocation-list.ts'
import { recordUnsignedLoad } from './unsigned-mode.ts'
import { verifyBundle } from './verify.ts'

export { ArtifactError, BundleErrorCode } from './errors.ts'

export interface LoadArtifactOptions {
  /** Directory that relative paths in config are resolved against. */
  baseDir: string
  /** Development only: allow `module:` plain files with no signature. */
  allowUnsigned: boolean
  /**
   * The trust policy bundles are verified against: a file path (YAML/JSON, resolved against
   * `baseDir`), a parsed policy document, or a compiled policy. Required for `bundle:` filters.
   */
  trustPolicy?: string | TrustPolicyDocument | TrustPolicy
  /** Verification time for key validity windows (tests). Default: now. */
  now?: Date
  /** Largest bundle file accepted, in bytes. Default 64 MiB. */
  maxBundleBytes?: number
  /** Where verified native modules are written for import. Default: a private dir under the OS temp dir. */
  nativeDir?: string
  /** When given, unsigned loads are logged loudly and counted. */
  log?: Logger
  metrics?: MetricsRegistry
  /**
   * Revoked bundle digests and signer key ids (the registry's list): a verified bundle on it is
   * refused with `bundle_revoked` or `signer_revoked`.
   */
  revocations?: RevocationCheck
}

/** What a bundle load returns beyond the contract: the verified manifest and derived limits. */
export interface BundleArtifact extends LoadedArtifact {
  bundle: NonNullable<LoadedArtifact['bundle']>
  manifest: BundleManifest
  /** Key id hint and SPKI fingerprint of the signer. */
  signerKey: { keyId: string; fingerprint: string }
  /** Config quotas over manifest defaults, checked against the maximums. */
  quotas: Quotas
  /** Capabilities the module's imports need (Wasm only; a subset of `capabilities`). */
  neededCapabilities: Capability[]
}

/**
 * Loads a filter's code. A `bundle:` is verified against the trust policy and its digest pin;
 * a plain `module:` loads only with `allowUnsigned`.
 *
 * @example
 * const artifact = await loadArtifact(
 *   { name: 'auth', kind: 'wasm', bundle: { path: 'auth.orb', digest: 'sha256:…' }, capabilities: ['headers:read'], … },
 *   { baseDir: '/etc/omnirelay', allowUnsigned: false, trustPolicy: 'trust-policy.yaml' },
 * )
 */
export async function loadArtifact(def: FilterDefinition, opts: LoadArtifactOptions): Promise<LoadedArtifact> {
  if (def.bundle) return loadBundle(def, def.bundle, opts)
  if (!def.module) throw new ArtifactError(BundleErrorCode.NoArtifact, `filter "${def.name}": needs a bundle or a module`)
  if (!opts.allowUnsigned) {
    throw new ArtifactError(
      BundleErrorCode.UnsignedRefused,
      `filter "${def.name}": plain module "${def.module}" refused: only signed bundles load unless allowUnsigned is set`,
    )
  }
  const file = resolve(opts.baseDir, def.module)
  const bytes = await readBytes(file, def.name)
  if (opts.log && opts.metrics) recordUnsignedLoad(def.name, file, opts.log, opts.metrics)
  return {
    kind: def.kind,
    bytes,
    digest: sha256Hex(bytes),
    entry: def.kind === 'native' ? file : undefined,
    capabilities: def.capabilities,
    unsigned: true,
  }
}

async function readBytes(file: string, filter: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file))
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.ReadFailed, `filter "${filter}": cannot read ${file}`, { cause: e })
  }
}

async function loadBundle(def: FilterDefinition, ref: { path: string; digest?: string }, opts: LoadArtifactOptions): Promise<BundleArtifact> {
  if (ref.digest === undefined && !opts.allowUnsigned) {
    throw new ArtifactError(BundleErrorCode.DigestRequired, `filter "${def.name}": bundle "${ref.path}" must be pinned by digest`)
  }
  if (opts.trustPolicy === undefined) {
    throw new ArtifactError(BundleErrorCode.PolicyMissing, `filter "${def.name}": a trust policy is required to load bundles`)
  }
  const policy = await resolvePolicy(opts.trustPolicy, opts.baseDir)
  const file = bundleFile(ref.path, opts.baseDir, def.name)
  const bytes = await readBytes(file, def.name)
  let v
  try {
    v = await verifyBundle(bytes, policy, { expectedDigest: ref.digest, now: opts.now, maxBytes: opts.maxBundleBytes })
  } catch (e) {
    if (e instanceof ArtifactError) throw new ArtifactError(e.code, `filter "${def.name}": bundle ${ref.path}: ${e.message}`, { cause: e })
    throw e
  }
  assertNotRevoked(opts.revocations, def.name, v.digest, v.signer.keyId)
  const m = v.manifest
  if (m.kind !== def.kind) {
    throw new ArtifactError(BundleErrorCode.KindMismatch, `filter "${def.name}": config says kind ${def.kind}, bundle is ${m.kind}`)
  }
  // Effective grant: what the bundle asks for, within what the publisher may grant (checked in
  // verify), within what the operator grants in config.
  const granted = new Set(def.capabilities)
  const capabilities = m.capabilities.filter((c) => granted.has(c))
  const missing = v.neededCapabilities.filter((c) => !granted.has(c))
  if (missing.length > 0) {
    throw new ArtifactError(
      BundleErrorCode.CapabilitiesNotGranted,
      `filter "${def.name}": module needs ${missing.join(', ')}, which config does not grant`,
    )
  }
  const quotas = effectiveQuotas(def, m, v.maxQuotas)
  checkFilterConfig(def, m)
  const entryBytes = v.entry.slice()
  const hex = sha256Hex(entryBytes)
  return {
    kind: m.kind,
    bytes: entryBytes,
    digest: hex,
    entry: m.kind === 'native' ? await materializeNative(entryBytes, hex, m.entry, opts.nativeDir) : undefined,
    bundle: { name: m.name, version: m.version, digest: v.digest, signer: v.signer.publisher },
    capabilities,
    unsigned: false,
    manifest: m,
    signerKey: { keyId: v.signer.keyId, fingerprint: v.signer.fingerprint },
    quotas,
    neededCapabilities: v.neededCapabilities,
  }
}

// Local paths and file: URLs only; fetching from a registry happens before this, by digest.
function bundleFile(path: string, baseDir: string, filter: string): string {
  if (path.startsWith('file:')) return fileURLToPath(path)
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    throw new ArtifactError(BundleErrorCode.ReadFailed, `filter "${filter}": bundle "${path}": only local paths and file: URLs load here`)
  }
  return resolve(baseDir, path)
}

function effectiveQuotas(def: FilterDefinition, m: BundleManifest, max: Quotas): Quotas {
  const out: Quotas = { ...m.quotas.default, ...stripUndefined(def.quotas) }
  for (const k of Object.keys(max) as (keyof Quotas)[]) {
    const limit = max[k] as number
    const v = out[k]
    if (v !== undefined && v > limit) {
      throw new ArtifactError(BundleErrorCode.QuotaExceedsMaximum, `filter "${def.name}": quota ${k}=${v} exceeds the bundle's maximum ${limit}`)
    }
  }
  return out
}

function stripUndefined(q: Quotas | undefined): Quotas {
  const out: Quotas = {}
  if (q) for (const [k, v] of Object.entries(q)) if (v !== undefined) out[k as keyof Quotas] = v
  return out
}

function checkFilterConfig(def: FilterDefinition, m: BundleManifest): void {
  if (!m.configSchema) return
  const validate = newAjv().compile(m.configSchema)
  if (!validate(def.config ?? {})) {
    const err = validate.errors?.[0]
    throw new ArtifactError(
      BundleErrorCode.ConfigInvalid,
      `filter "${def.name}": config does not match the bundle's schema: ${err ? `${err.instancePath || '/'} ${err.message}` : 'invalid'}`,
    )
  }
}

// A native module must be a file to import. Written content-addressed into a private dir
// (0700), via rename so a reader never sees a partial file.
async function materializeNative(bytes: Uint8Array, hex: string, entryName: string, dir?: string): Promise<string> {
  const base = dir ?? join(tmpdir(), `omnirelay-native-${process.getuid?.() ?? 'user'}`)
  await mkdir(base, { recursive: true, mode: 0o700 })
  // The default path is predictable: refuse a dir someone else made, or a symlink to one, since
  // whoever can write there could swap the verified module before it is imported.
  const st = await lstat(base)
  const uid = process.getuid?.()
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (process.platform !== 'win32' && (st.mode & 0o077) !== 0)) {
    throw new ArtifactError(BundleErrorCode.NativeDirUnsafe, `native module dir ${base} must be a private (0700) directory owned by this user`)
  }
  const ext = entryName.endsWith('.cjs') ? '.cjs' : '.mjs'
  const file = join(base, hex + ext)
  const existing = await stat(file).catch(() => undefined)
  if (existing?.isFile()) {
    const current = await readFile(file)
    if (sha256Hex(current) === hex) return file
  }
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`
  await writeFile(tmp, bytes, { mode: 0o600 })
  await rename(tmp, file)
  return file
}

const compiledDocs = new WeakMap<object, Promise<TrustPolicy>>()
const policyFiles = new Map<string, { mtimeMs: number; size: number; policy: Promise<TrustPolicy> }>()

function isCompiled(p: TrustPolicyDocument | TrustPolicy): p is TrustPolicy {
  return (p as TrustPolicy).keys instanceof Map
}

// Policies are compiled once and reused until the file changes, so each bundle load only
// looks keys up (and the Sigstore verifier per policy is reused too).
async function resolvePolicy(p: string | TrustPolicyDocument | TrustPolicy, baseDir: string): Promise<TrustPolicy> {
  if (typeof p === 'string') {
    const file = resolve(baseDir, p)
    const st = await stat(file).catch((e: unknown) => {
      throw new ArtifactError(BundleErrorCode.PolicyMissing, `cannot read trust policy ${file}`, { cause: e })
    })
    const hit = policyFiles.get(file)
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.policy
    const policy = loadTrustPolicy(file)
    policyFiles.set(file, { mtimeMs: st.mtimeMs, size: st.size, policy })
    policy.catch(() => policyFiles.delete(file))
    return policy
  }
  if (isCompiled(p)) return p
  let compiled = compiledDocs.get(p)
  if (!compiled) {
    compiled = compileTrustPolicy(p, baseDir)
    compiledDocs.set(p, compiled)
  }
  return compiled
}

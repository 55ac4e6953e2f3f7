/**
 * The registry: admission, storage, yanks, revocations and the audit trail, independent of
 * any transport (the HTTP API in api/ and the CLI adapt it). One instance owns one data
 * directory: `<dataDir>/registry.sqlite` and `<dataDir>/blobs/`.
 */
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { compileTrustPolicy, loadTrustPolicy, type TrustPolicy } from '@omnirelay/runtime/bundles/trust-policy.ts'
import { normalizeDigest, sha256Digest } from '@omnirelay/runtime/bundles/digest.ts'
import { unpackBundle } from '@omnirelay/runtime/bundles/format.ts'
import { loadBinaryen } from '@omnirelay/runtime/sandbox/fuel.ts'
import { admitBundle, type Admitted } from './admission/pipeline.ts'
import { AdmissionPool } from './admission/worker/admission-pool.ts'
import { resolvePolicy, type AdmissionPolicy } from './admission/policy.ts'
import { selectSmokeRunner, type SmokeRunner } from './admission/smoke/index.ts'
import { AuditAction, AuditLog, type AuditEntry, type AuditVerifyResult } from './audit/audit-log.ts'
import { authorize, tokenRecord, LOCAL_OPERATOR, type Principal, type TokenGrant } from './auth/tokens.ts'
import { AdmissionStep, RegistryError, RegistryErrorCode } from './errors.ts'
import { BlobStore } from './storage/blob-store.ts'
import { openDatabase, schemaVersion, type Db } from './storage/database.ts'
import { MetadataStore, type BundleRecord, type NameSummary, type Revocation } from './storage/metadata.ts'

export const MEDIA_TYPE_BUNDLE = 'application/vnd.omnirelay.bundle.v1'
export const MEDIA_TYPE_WASM = 'application/wasm'

export interface RegistryOptions {
  dataDir: string
  /** A compiled policy, a policy document (JSON/YAML shape), or a policy file path. */
  trustPolicy: TrustPolicy | object | string
  /** Tokens to (re)install at start, by id. Tokens added with the CLI persist on their own. */
  tokens?: TokenGrant[]
  /** `open` (default): anyone may read; `token`: reads need a token with scope `read`. */
  readAccess?: 'open' | 'token'
  admission?: Parameters<typeof resolvePolicy>[0]
  /** Clock for audit entries and key validity (tests). */
  now?: () => Date
  /**
   * Remove blobs without metadata at open (default true). Only the serving process may do it:
   * another process (the CLI) could otherwise delete a publish's blobs before its commit.
   */
  collectGarbage?: boolean
  /**
   * Where admission runs. `worker` (default when the trust policy is a file or a document): a
   * worker thread, so publishes never block this event loop and a runaway one is stopped at
   * `admissionTimeoutMs`. `inline`: on this thread (always used for a compiled policy object).
   */
  admissionIsolation?: 'worker' | 'inline'
  /** Hard limit on one admission in the worker, counted once the thread is ready. Default 60 s. */
  admissionTimeoutMs?: number
  /** Fault injection for crash tests: runs after the blobs are written, before the metadata commit. */
  faults?: { afterBlobs?: () => void | Promise<void> }
}

export interface PublishResult {
  result: 'admitted' | 'exists'
  bundle: BundleRecord
}

export interface BlobHandle {
  digest: string
  size: number
  mediaType: string
  /** The whole blob when it is small enough to be held in memory. */
  bytes?: Uint8Array
  stream: () => NodeJS.ReadableStream
}

function isCompiled(p: unknown): p is TrustPolicy {
  return typeof p === 'object' && p !== null && (p as TrustPolicy).keys instanceof Map
}

export class Registry {
  readonly dataDir: string
  readonly readAccess: 'open' | 'token'
  readonly policy: AdmissionPolicy
  readonly audit: AuditLog
  readonly #db: Db
  readonly #meta: MetadataStore
  readonly #blobs: BlobStore
  readonly #admit: AdmitFn
  readonly #now: () => Date
  readonly #faults: RegistryOptions['faults']
  /** One admission at a time per name@version: concurrent identical publishes become one admit + `exists`. */
  readonly #locks = new Map<string, Promise<unknown>>()
  /** Admission is CPU-bound (instrumentation, compilation): more at once only adds latency. */
  readonly #admissions = new Semaphore(2)
  #closed = false

  private constructor(o: {
    opts: RegistryOptions
    db: Db
    blobs: BlobStore
    admit: AdmitFn
    policy: AdmissionPolicy
  }) {
    this.dataDir = o.opts.dataDir
    this.readAccess = o.opts.readAccess ?? 'open'
    this.policy = o.policy
    this.#db = o.db
    this.#meta = new MetadataStore(o.db)
    this.#blobs = o.blobs
    this.#admit = o.admit
    this.#now = o.opts.now ?? (() => new Date())
    this.#faults = o.opts.faults
    this.audit = new AuditLog(o.db)
  }

  /**
   * Opens (or creates) a registry on a data directory: migrates the database, removes blobs a
   * crash left without metadata, installs the configured tokens.
   *
   * @example
   * const reg = await Registry.open({ dataDir: './data', trustPolicy: './trust-policy.yaml' })
   */
  static async open(opts: RegistryOptions): Promise<Registry> {
    await mkdir(opts.dataDir, { recursive: true })
    const trust = isCompiled(opts.trustPolicy)
      ? opts.trustPolicy
      : typeof opts.trustPolicy === 'string'
        ? await loadTrustPolicy(opts.trustPolicy)
        : await compileTrustPolicy(opts.trustPolicy, opts.dataDir)
    const policy = resolvePolicy(opts.admission)
    const useWorker = (opts.admissionIsolation ?? 'worker') === 'worker' && !isCompiled(opts.trustPolicy)
    const admit: AdmitFn = useWorker
      ? poolAdmit(
          new AdmissionPool(
            {
              trustPolicy: typeof opts.trustPolicy === 'string' ? { file: resolve(opts.trustPolicy) } : { document: opts.trustPolicy as object, baseDir: resolve(opts.dataDir) },
              policy,
            },
            opts.admissionTimeoutMs ?? 60_000,
          ),
        )
      : inlineAdmit(trust, policy, await selectSmokeRunner(policy.smoke.runner))
    const db = openDatabase(join(opts.dataDir, 'registry.sqlite'))
    try {
      const blobs = new BlobStore(join(opts.dataDir, 'blobs'))
      await blobs.init()
      const meta = new MetadataStore(db)
      if (opts.collectGarbage !== false) {
        const referenced = meta.referencedDigests()
        await blobs.collectGarbage((d) => referenced.has(d))
      }
      for (const g of opts.tokens ?? []) meta.upsertToken(tokenRecord(g))
      return new Registry({ opts, db, blobs, admit, policy })
    } catch (e) {
      db.close()
      throw e
    }
  }

  get store(): MetadataStore {
    return this.#meta
  }

  /**
   * Admits and stores one bundle file. Resolves with `admitted`, or `exists` when the very
   * same file is already stored under its name@version (idempotent). Rejects with a
   * RegistryError naming the step and code; every outcome is in the audit log.
   */
  async publish(file: Uint8Array, who: Principal): Promise<PublishResult> {
    this.#open()
    const digest = sha256Digest(file)
    const peek = peekNameVersion(file)
    const subject = peek ? `${peek.name}@${peek.version}` : '?'
    const refuse = (e: unknown): never => {
      const err = e instanceof RegistryError ? e : new RegistryError(RegistryErrorCode.Internal, (e as Error)?.message ?? String(e), { status: 500 })
      this.audit.append(
        { actor: who.actor, action: AuditAction.Publish, subject, digest, result: `refused:${err.code}`, detail: { step: err.step ?? null, code: err.code, message: err.message.slice(0, 500) } },
        this.#now(),
      )
      throw err
    }
    try {
      authorize(who, 'publish', peek?.name)
    } catch (e) {
      return refuse(e)
    }
    const key = subject === '?' ? digest : subject
    const prev = this.#locks.get(key) ?? Promise.resolve()
    const run = prev.then(
      () => this.#publishLocked(file, digest, subject, who, refuse),
      () => this.#publishLocked(file, digest, subject, who, refuse),
    )
    const tail = run.catch(() => {})
    this.#locks.set(key, tail)
    void tail.then(() => {
      if (this.#locks.get(key) === tail) this.#locks.delete(key)
    })
    return run
  }

  async #publishLocked(file: Uint8Array, digest: string, subject: string, who: Principal, refuse: (e: unknown) => never): Promise<PublishResult> {
    // Idempotent re-publish, and immutable versions, decided before any expensive step.
    if (this.#meta.isRevoked('digest', digest)) {
      return refuse(new RegistryError(RegistryErrorCode.DigestRevoked, `${digest} is revoked`, { status: 422, step: AdmissionStep.Signature }))
    }
    const same = this.#meta.getByDigest(digest)
    if (same) {
      if (this.#meta.isRevoked('signer', same.signer.keyId)) {
        return refuse(new RegistryError(RegistryErrorCode.SignerRevoked, `signer "${same.signer.keyId}" is revoked`, { status: 422, step: AdmissionStep.Signature }))
      }
      return this.#exists(same, who)
    }
    if (subject !== '?') {
      const [name, version] = splitSubject(subject)
      const other = this.#meta.getBundle(name, version)
      if (other) {
        return refuse(new RegistryError(RegistryErrorCode.VersionExists, `${subject} is already published with digest ${other.digest}`, { status: 409, step: AdmissionStep.Version }))
      }
    }
    let admitted
    try {
      admitted = await this.#admissions.run(() => this.#admit.admit(file, this.#now()))
      authorize(who, 'publish', admitted.verified.manifest.name)
      if (this.#meta.isRevoked('signer', admitted.verified.signer.keyId)) {
        throw new RegistryError(RegistryErrorCode.SignerRevoked, `signer "${admitted.verified.signer.keyId}" is revoked`, { status: 422, step: AdmissionStep.Signature })
      }
    } catch (e) {
      return refuse(e)
    }
    const v = admitted.verified
    const m = v.manifest
    // Blobs first (atomic each), then metadata + audit in one transaction: a crash in between
    // leaves only unreferenced blobs, which the next start removes.
    const blobs = [{ digest: await this.#blobs.put(file), size: file.length, mediaType: MEDIA_TYPE_BUNDLE }]
    if (admitted.instrumented) {
      blobs.push({ digest: await this.#blobs.put(admitted.instrumented), size: admitted.instrumented.length, mediaType: MEDIA_TYPE_WASM })
    }
    await this.#faults?.afterBlobs?.()
    const record: BundleRecord = {
      name: m.name,
      version: m.version,
      kind: m.kind,
      digest: v.digest,
      manifestDigest: v.manifestDigest,
      manifest: m,
      size: file.length,
      instrumentedDigest: admitted.instrumented ? (blobs[1] as { digest: string }).digest : null,
      capabilities: [...m.capabilities].sort(),
      description: m.description ?? null,
      signer: v.signer,
      publishedBy: who.actor,
      publishedAt: this.#now().toISOString(),
      admission: admitted.report,
      yanked: null,
    }
    try {
      const result = this.#db.transaction(() => {
        const r = this.#meta.insertBundle(record, blobs)
        this.audit.append(
          {
            actor: who.actor,
            action: AuditAction.Publish,
            subject: `${m.name}@${m.version}`,
            digest: v.digest,
            result: r,
            detail: { signer: v.signer.keyId, publisher: v.signer.publisher, instrumented: record.instrumentedDigest, steps: admitted.report.steps },
          },
          this.#now(),
        )
        return r
      }).immediate()
      return { result, bundle: result === 'admitted' ? record : (this.#meta.getBundle(m.name, m.version) as BundleRecord) }
    } catch (e) {
      return refuse(e)
    }
  }

  /** Audits an upload refused before it could be read (e.g. over the size limit). */
  recordRefusedUpload(who: Principal, err: RegistryError): void {
    this.#open()
    this.audit.append(
      { actor: who.actor, action: AuditAction.Publish, subject: '?', result: `refused:${err.code}`, detail: { step: err.step ?? null, code: err.code, message: err.message.slice(0, 500) } },
      this.#now(),
    )
  }

  #exists(b: BundleRecord, who: Principal): PublishResult {
    this.audit.append({ actor: who.actor, action: AuditAction.Publish, subject: `${b.name}@${b.version}`, digest: b.digest, result: 'exists' }, this.#now())
    return { result: 'exists', bundle: b }
  }

  /** Names (with latest live version), optionally filtered by name substring, capability, kind. */
  list(filter: { query?: string; capability?: string; kind?: string } = {}): NameSummary[] {
    this.#open()
    return this.#meta.names(filter)
  }

  versions(name: string): (BundleRecord & { revoked: Revocation | null })[] {
    this.#open()
    return this.#meta.versions(name).map((b) => ({ ...b, revoked: this.#meta.revocationOf(b) ?? null }))
  }

  get(name: string, version: string): BundleRecord & { revoked: Revocation | null } {
    this.#open()
    const b = this.#meta.getBundle(name, version)
    if (!b) throw new RegistryError(RegistryErrorCode.NotFound, `${name}@${version} is not in the registry`, { status: 404 })
    return { ...b, revoked: this.#meta.revocationOf(b) ?? null }
  }

  /** The manifest exactly as signed (its sha256 is `manifestDigest`). */
  async manifestBytes(name: string, version: string): Promise<{ bytes: Uint8Array; digest: string }> {
    const b = this.get(name, version)
    const bytes = unpackBundle(await this.#blobs.read(b.digest)).manifest
    if (sha256Digest(bytes) !== b.manifestDigest) {
      throw new RegistryError(RegistryErrorCode.StorageCorrupt, `stored bundle ${b.digest} does not hold its manifest`, { status: 500 })
    }
    return { bytes, digest: b.manifestDigest }
  }

  /**
   * A stored blob (bundle file or instrumented module) by digest. Revoked content is refused
   * (`revoked`, 410): data planes must not fetch it again. Yanked content still downloads:
   * existing pins keep resolving.
   */
  async blob(digestText: string): Promise<BlobHandle> {
    this.#open()
    const digest = normalizeDigest(digestText)
    if (!digest) throw new RegistryError(RegistryErrorCode.BadRequest, `not a sha256 digest: ${digestText}`)
    const state = this.#meta.blobState(digest)
    if (!state.mediaType) throw new RegistryError(RegistryErrorCode.NotFound, `no blob ${digest}`, { status: 404 })
    if (state.revoked) {
      const owner = this.#meta.getByDigest(digest) ?? this.#meta.byInstrumentedDigest(digest)[0]
      const rev = owner && this.#meta.revocationOf(owner)
      throw new RegistryError(RegistryErrorCode.Revoked, `${digest} is revoked${rev ? ` (${rev.kind} ${rev.target}: ${rev.reason})` : ''}`, { status: 410 })
    }
    const mediaType = state.mediaType
    const h = await this.#blobs.open(digest)
    if (!h) throw new RegistryError(RegistryErrorCode.StorageCorrupt, `blob ${digest} is recorded but missing on disk`, { status: 500 })
    return h.bytes ? { digest, size: h.size, mediaType, bytes: h.bytes, stream: h.stream } : { digest, size: h.size, mediaType, stream: h.stream }
  }

  /** Yanks a version: no new rollouts may pick it; pinned digests still download. */
  yank(name: string, version: string, reason: string, who: Principal): BundleRecord {
    this.#open()
    const subject = `${name}@${version}`
    try {
      authorize(who, 'publish', name)
      const b = this.#meta.getBundle(name, version)
      if (!b) throw new RegistryError(RegistryErrorCode.NotFound, `${subject} is not in the registry`, { status: 404 })
      return this.#db.transaction(() => {
        const changed = this.#meta.yank(name, version, reason, this.#now().toISOString())
        this.audit.append({ actor: who.actor, action: AuditAction.Yank, subject, digest: b.digest, result: changed ? 'ok' : 'already', detail: { reason } }, this.#now())
        return this.#meta.getBundle(name, version) as BundleRecord
      }).immediate()
    } catch (e) {
      if (e instanceof RegistryError && e.code !== RegistryErrorCode.NotFound) {
        this.audit.append({ actor: who.actor, action: AuditAction.Yank, subject, result: `refused:${e.code}`, detail: { reason } }, this.#now())
      }
      throw e
    }
  }

  /** Revokes a bundle digest or a signer key id. Data planes poll `revocations()` and refuse both. */
  revoke(target: { digest: string } | { signer: string }, reason: string, who: Principal): Revocation {
    this.#open()
    const kind = 'digest' in target ? 'digest' : 'signer'
    const raw = 'digest' in target ? target.digest : target.signer
    const value = kind === 'digest' ? normalizeDigest(raw) : raw
    try {
      authorize(who, 'admin')
      if (!value || value.length > 256) throw new RegistryError(RegistryErrorCode.BadRequest, `invalid ${kind} "${raw}"`)
      const rev: Revocation = { kind, target: value, reason, revokedBy: who.actor, revokedAt: this.#now().toISOString() }
      return this.#db.transaction(() => {
        const added = this.#meta.revoke(rev)
        this.audit.append({ actor: who.actor, action: AuditAction.Revoke, subject: `${kind}:${value}`, digest: kind === 'digest' ? value : undefined, result: added ? 'ok' : 'already', detail: { reason } }, this.#now())
        return rev
      }).immediate()
    } catch (e) {
      if (e instanceof RegistryError) this.audit.append({ actor: who.actor, action: AuditAction.Revoke, subject: `${kind}:${raw.slice(0, 256)}`, result: `refused:${e.code}`, detail: { reason } }, this.#now())
      throw e
    }
  }

  /** The revocation list data planes poll. `serial` only grows. */
  revocations(): { serial: number; digests: string[]; signers: string[]; entries: Revocation[] } {
    this.#open()
    const { list, serial } = this.#meta.revocations()
    return {
      serial,
      digests: list.filter((r) => r.kind === 'digest').map((r) => r.target),
      signers: list.filter((r) => r.kind === 'signer').map((r) => r.target),
      entries: list,
    }
  }

  auditEntries(after = 0, limit = 100, who: Principal = LOCAL_OPERATOR): AuditEntry[] {
    this.#open()
    authorize(who, 'admin')
    return this.audit.list(after, Math.min(Math.max(1, limit), 1000))
  }

  verifyAudit(who: Principal = LOCAL_OPERATOR): AuditVerifyResult {
    this.#open()
    authorize(who, 'admin')
    return this.audit.verify()
  }

  health(): { ok: true; schemaVersion: number; bundles: number; auditHead: { seq: number; hash: string } } {
    this.#open()
    return { ok: true, schemaVersion: schemaVersion(this.#db), bundles: this.#meta.count(), auditHead: this.audit.head() }
  }

  /**
   * Gets admission ready ahead of the first publish: starts the worker thread (or, inline,
   * loads binaryen, which takes hundreds of ms). Call it when serving.
   */
  warm(): void {
    if (!this.#closed) this.#admit.warm()
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    void this.#admit.close()
    this.#db.close()
  }

  #open(): void {
    if (this.#closed) throw new RegistryError(RegistryErrorCode.Closed, 'registry is closed', { status: 503 })
  }
}

/** A counting semaphore: at most `limit` tasks run at once, the rest wait in order. */
class Semaphore {
  #free: number
  readonly #waiting: (() => void)[] = []
  constructor(limit: number) {
    this.#free = limit
  }
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((r) => this.#waiting.push(r))
    try {
      return await task()
    } finally {
      const next = this.#waiting.shift()
      if (next) next()
      else this.#free++
    }
  }
}

/** Runs admission: on this thread or in the worker. */
interface AdmitFn {
  admit(file: Uint8Array, now: Date): Promise<Admitted>
  warm(): void
  close(): Promise<void>
}

function inlineAdmit(trustPolicy: TrustPolicy, policy: AdmissionPolicy, smoke: SmokeRunner): AdmitFn {
  return {
    admit: (file, now) => admitBundle(file, { trustPolicy, policy, smoke, now }),
    warm: () => void loadBinaryen().catch(() => {}),
    close: async () => {},
  }
}

function poolAdmit(pool: AdmissionPool): AdmitFn {
  return { admit: (file, now) => pool.admit(file, now), warm: () => pool.warm(), close: () => pool.close() }
}

function splitSubject(s: string): [string, string] {
  const at = s.lastIndexOf('@')
  return [s.slice(0, at), s.slice(at + 1)]
}

/** name and version from the manifest, without validating anything (for locks, auth, audit). */
function peekNameVersion(file: Uint8Array): { name: string; version: string } | undefined {
  try {
    const m = JSON.parse(new TextDecoder().decode(unpackBundle(file).manifest)) as { name?: unknown; version?: unknown }
    if (typeof m.name === 'string' && typeof m.version === 'string' && m.name.length <= 214 && m.version.length <= 128) return { name: m.name, version: m.version }
  } catch {
    // admission reports it
  }
  return undefined
}

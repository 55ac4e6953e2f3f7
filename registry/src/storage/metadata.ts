/**
 * Registry metadata in SQLite: bundle versions, their blobs, yanks, revocations and publisher
 * tokens. Only this file writes SQL for them; callers get plain objects.
 */
import type { BundleManifest } from '@omnirelay/runtime/bundles/manifest.ts'
import { RegistryError, RegistryErrorCode, AdmissionStep } from '../errors.ts'
import type { Db } from './database.ts'

export interface Signer {
  keyId: string
  publisher: string
  fingerprint: string
}

/** One admitted bundle version, as the API returns it. */
export interface BundleRecord {
  name: string
  version: string
  kind: BundleManifest['kind']
  /** `sha256:<hex>` of the bundle file: its content address. */
  digest: string
  manifestDigest: string
  manifest: BundleManifest
  size: number
  /** The fuel-instrumented entry module (Wasm only). */
  instrumentedDigest: string | null
  capabilities: string[]
  description: string | null
  signer: Signer
  publishedBy: string
  publishedAt: string
  /** What admission measured (step timings, smoke results). */
  admission: Record<string, unknown>
  yanked: { at: string; reason: string } | null
}

export interface Revocation {
  kind: 'digest' | 'signer'
  target: string
  reason: string
  revokedBy: string
  revokedAt: string
}

export interface TokenRecord {
  id: string
  hash: string
  names: string[]
  scopes: string[]
  createdAt: string
}

interface BundleRow {
  name: string
  version: string
  kind: string
  digest: string
  manifest_digest: string
  manifest: string
  size: number
  instrumented_digest: string | null
  capabilities: string
  description: string | null
  signer_key_id: string
  signer_publisher: string
  signer_fingerprint: string
  published_by: string
  published_at: string
  admission: string
  yanked_at: string | null
  yank_reason: string | null
}

export interface NameSummary {
  name: string
  kind: string
  versions: number
  latest: string
  description: string | null
}

/** Result of inserting a version: new, or the very same bundle already there. */
export type InsertResult = 'admitted' | 'exists'

export class MetadataStore {
  readonly #db: Db
  readonly #blobState

  constructor(db: Db) {
    this.#db = db
    // The download path: one prepared statement, no JSON parsing.
    this.#blobState = db.prepare<{ media_type: string | null; owners: number; live: number }>(
      `SELECT
         (SELECT media_type FROM blobs WHERE digest = :d) AS media_type,
         (SELECT count(*) FROM bundles b WHERE b.digest = :d OR b.instrumented_digest = :d) AS owners,
         (SELECT count(*) FROM bundles b WHERE (b.digest = :d OR b.instrumented_digest = :d)
            AND NOT EXISTS (SELECT 1 FROM revocations r
                            WHERE (r.target_kind = 'digest' AND r.target = b.digest) OR (r.target_kind = 'signer' AND r.target = b.signer_key_id))) AS live`,
    )
  }

  /**
   * What a download needs: the blob's media type (undefined: not stored) and whether every
   * bundle it belongs to is revoked (a module shared with a live bundle stays available).
   */
  blobState(digest: string): { mediaType: string | undefined; revoked: boolean } {
    const r = this.#blobState.get({ d: digest })
    return { mediaType: r?.media_type ?? undefined, revoked: r !== undefined && r.owners > 0 && r.live === 0 }
  }

  get db(): Db {
    return this.#db
  }

  /**
   * Inserts an admitted version and its blobs. Must run inside the caller's transaction (with
   * the audit append). Same name@version with the same digest is `exists`; with another digest
   * it is refused: versions are immutable.
   */
  insertBundle(r: BundleRecord, blobs: { digest: string; size: number; mediaType: string }[]): InsertResult {
    const existing = this.#db.prepare<{ digest: string }>('SELECT digest FROM bundles WHERE name = ? AND version = ?').get(r.name, r.version)
    if (existing) {
      if (existing.digest === r.digest) return 'exists'
      throw new RegistryError(RegistryErrorCode.VersionExists, `${r.name}@${r.version} is already published with digest ${existing.digest}`, {
        status: 409,
        step: AdmissionStep.Version,
      })
    }
    const blob = this.#db.prepare('INSERT OR IGNORE INTO blobs (digest, size, media_type) VALUES (?, ?, ?)')
    for (const b of blobs) blob.run(b.digest, b.size, b.mediaType)
    this.#db
      .prepare(
        `INSERT INTO bundles (name, version, kind, digest, manifest_digest, manifest, size, instrumented_digest, capabilities, description,
          signer_key_id, signer_publisher, signer_fingerprint, published_by, published_at, admission)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.name,
        r.version,
        r.kind,
        r.digest,
        r.manifestDigest,
        JSON.stringify(r.manifest),
        r.size,
        r.instrumentedDigest,
        JSON.stringify(r.capabilities),
        r.description,
        r.signer.keyId,
        r.signer.publisher,
        r.signer.fingerprint,
        r.publishedBy,
        r.publishedAt,
        JSON.stringify(r.admission),
      )
    const cap = this.#db.prepare('INSERT INTO bundle_capabilities (name, version, capability) VALUES (?, ?, ?)')
    for (const c of r.capabilities) cap.run(r.name, r.version, c)
    return 'admitted'
  }

  getBundle(name: string, version: string): BundleRecord | undefined {
    const row = this.#db.prepare<BundleRow>('SELECT * FROM bundles WHERE name = ? AND version = ?').get(name, version)
    return row && toRecord(row)
  }

  getByDigest(digest: string): BundleRecord | undefined {
    const row = this.#db.prepare<BundleRow>('SELECT * FROM bundles WHERE digest = ?').get(digest)
    return row && toRecord(row)
  }

  /** Bundles whose entry instruments to this module (identical modules are stored once). */
  byInstrumentedDigest(digest: string): BundleRecord[] {
    return this.#db.prepare<BundleRow>('SELECT * FROM bundles WHERE instrumented_digest = ?').all(digest).map(toRecord)
  }

  count(): number {
    return this.#db.prepare<{ n: number }>('SELECT count(*) AS n FROM bundles').get()?.n ?? 0
  }

  /** Versions of a name, oldest publication first. */
  versions(name: string): BundleRecord[] {
    return this.#db.prepare<BundleRow>('SELECT * FROM bundles WHERE name = ? ORDER BY published_at, rowid').all(name).map(toRecord)
  }

  /**
   * Names with their newest non-yanked version (by semver precedence). Filters: a substring of
   * the name, a capability the bundle requests, a kind.
   */
  names(filter: { query?: string; capability?: string; kind?: string } = {}): NameSummary[] {
    const where: string[] = []
    const args: unknown[] = []
    if (filter.query) {
      where.push("b.name LIKE ? ESCAPE '\\'")
      args.push(`%${filter.query.replace(/[\\%_]/g, (c) => '\\' + c)}%`)
    }
    if (filter.kind) {
      where.push('b.kind = ?')
      args.push(filter.kind)
    }
    if (filter.capability) {
      where.push('EXISTS (SELECT 1 FROM bundle_capabilities c WHERE c.name = b.name AND c.version = b.version AND c.capability = ?)')
      args.push(filter.capability)
    }
    const rows = this.#db
      .prepare<{ name: string; version: string; kind: string; description: string | null; yanked_at: string | null }>(
        `SELECT b.name, b.version, b.kind, b.description, b.yanked_at FROM bundles b ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY b.name`,
      )
      .all(...args)
    const byName = new Map<string, typeof rows>()
    for (const r of rows) {
      const list = byName.get(r.name)
      if (list) list.push(r)
      else byName.set(r.name, [r])
    }
    const out: NameSummary[] = []
    for (const [name, list] of byName) {
      // Newest by precedence among live versions; when every version is yanked, newest of all.
      const live = list.filter((r) => r.yanked_at === null)
      const pool = live.length > 0 ? live : list
      const best = pool.reduce((a, b) => (compareSemver(b.version, a.version) > 0 ? b : a))
      out.push({ name, kind: best.kind, versions: list.length, latest: best.version, description: best.description })
    }
    return out
  }

  /** Whether a blob belongs to some admitted bundle. */
  blobMediaType(digest: string): string | undefined {
    return this.#db.prepare<{ media_type: string }>('SELECT media_type FROM blobs WHERE digest = ?').get(digest)?.media_type
  }

  /** Every blob digest a metadata row references (for garbage collection). */
  referencedDigests(): Set<string> {
    return new Set(this.#db.prepare<{ digest: string }>('SELECT digest FROM blobs').all().map((r) => r.digest))
  }

  /** Marks a version yanked. Returns false when it was already yanked. */
  yank(name: string, version: string, reason: string, at: string): boolean {
    return this.#db.prepare('UPDATE bundles SET yanked_at = ?, yank_reason = ? WHERE name = ? AND version = ? AND yanked_at IS NULL').run(at, reason, name, version).changes > 0
  }

  /** Records a revocation. Returns false when the target was already revoked. */
  revoke(r: Revocation): boolean {
    return (
      this.#db
        .prepare('INSERT OR IGNORE INTO revocations (target_kind, target, reason, revoked_by, revoked_at) VALUES (?, ?, ?, ?, ?)')
        .run(r.kind, r.target, r.reason, r.revokedBy, r.revokedAt).changes > 0
    )
  }

  revocations(): { list: Revocation[]; serial: number } {
    const rows = this.#db
      .prepare<{ id: number; target_kind: 'digest' | 'signer'; target: string; reason: string; revoked_by: string; revoked_at: string }>(
        'SELECT * FROM revocations ORDER BY id',
      )
      .all()
    return {
      list: rows.map((r) => ({ kind: r.target_kind, target: r.target, reason: r.reason, revokedBy: r.revoked_by, revokedAt: r.revoked_at })),
      serial: rows.length === 0 ? 0 : (rows[rows.length - 1] as { id: number }).id,
    }
  }

  isRevoked(kind: 'digest' | 'signer', target: string): boolean {
    return this.#db.prepare('SELECT 1 FROM revocations WHERE target_kind = ? AND target = ?').get(kind, target) !== undefined
  }

  /** The revocation that applies to a bundle (its digest or its signer), if any. */
  revocationOf(b: Pick<BundleRecord, 'digest' | 'signer'>): Revocation | undefined {
    const r = this.#db
      .prepare<{ target_kind: 'digest' | 'signer'; target: string; reason: string; revoked_by: string; revoked_at: string }>(
        "SELECT * FROM revocations WHERE (target_kind = 'digest' AND target = ?) OR (target_kind = 'signer' AND target = ?) ORDER BY id LIMIT 1",
      )
      .get(b.digest, b.signer.keyId)
    return r && { kind: r.target_kind, target: r.target, reason: r.reason, revokedBy: r.revoked_by, revokedAt: r.revoked_at }
  }

  addToken(t: TokenRecord): void {
    this.#db.prepare('INSERT INTO tokens (id, hash, names, scopes, created_at) VALUES (?, ?, ?, ?, ?)').run(t.id, t.hash, JSON.stringify(t.names), JSON.stringify(t.scopes), t.createdAt)
  }

  /** Inserts or replaces a token by id (tokens given in config on every start). */
  upsertToken(t: TokenRecord): void {
    this.#db
      .prepare('INSERT INTO tokens (id, hash, names, scopes, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, names = excluded.names, scopes = excluded.scopes')
      .run(t.id, t.hash, JSON.stringify(t.names), JSON.stringify(t.scopes), t.createdAt)
  }

  removeToken(id: string): boolean {
    return this.#db.prepare('DELETE FROM tokens WHERE id = ?').run(id).changes > 0
  }

  tokenByHash(hash: string): TokenRecord | undefined {
    const r = this.#db.prepare<{ id: string; hash: string; names: string; scopes: string; created_at: string }>('SELECT * FROM tokens WHERE hash = ?').get(hash)
    return r && { id: r.id, hash: r.hash, names: JSON.parse(r.names) as string[], scopes: JSON.parse(r.scopes) as string[], createdAt: r.created_at }
  }

  tokens(): Omit<TokenRecord, 'hash'>[] {
    return this.#db
      .prepare<{ id: string; names: string; scopes: string; created_at: string }>('SELECT id, names, scopes, created_at FROM tokens ORDER BY id')
      .all()
      .map((r) => ({ id: r.id, names: JSON.parse(r.names) as string[], scopes: JSON.parse(r.scopes) as string[], createdAt: r.created_at }))
  }
}

function toRecord(r: BundleRow): BundleRecord {
  return {
    name: r.name,
    version: r.version,
    kind: r.kind as BundleRecord['kind'],
    digest: r.digest,
    manifestDigest: r.manifest_digest,
    manifest: JSON.parse(r.manifest) as BundleManifest,
    size: r.size,
    instrumentedDigest: r.instrumented_digest,
    capabilities: JSON.parse(r.capabilities) as string[],
    description: r.description,
    signer: { keyId: r.signer_key_id, publisher: r.signer_publisher, fingerprint: r.signer_fingerprint },
    publishedBy: r.published_by,
    publishedAt: r.published_at,
    admission: JSON.parse(r.admission) as Record<string, unknown>,
    yanked: r.yanked_at === null ? null : { at: r.yanked_at, reason: r.yank_reason ?? '' },
  }
}

/** semver 2.0.0 precedence (build metadata ignored). Negative when a < b. */
export function compareSemver(a: string, b: string): number {
  const split = (v: string): [number[], string[]] => {
    const core = v.split('+')[0] as string
    const dash = core.indexOf('-')
    const main = (dash < 0 ? core : core.slice(0, dash)).split('.').map(Number)
    return [main, dash < 0 ? [] : core.slice(dash + 1).split('.')]
  }
  const [am, ap] = split(a)
  const [bm, bp] = split(b)
  for (let i = 0; i < 3; i++) if (am[i] !== bm[i]) return (am[i] as number) - (bm[i] as number)
  if (ap.length === 0 || bp.length === 0) return bp.length - ap.length
  for (let i = 0; i < Math.min(ap.length, bp.length); i++) {
    const x = ap[i] as string
    const y = bp[i] as string
    if (x === y) continue
    const xn = /^\d+$/.test(x)
    const yn = /^\d+$/.test(y)
    if (xn && yn) return Number(x) - Number(y)
    if (xn !== yn) return xn ? -1 : 1
    return x < y ? -1 : 1
  }
  return ap.length - bp.length
}

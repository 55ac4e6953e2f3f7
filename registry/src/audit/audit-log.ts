/**
 * The audit trail: an append-only, hash-chained log in the registry's SQLite file. Each entry's
 * hash covers its fields and the previous entry's hash, so editing or deleting any entry breaks
 * the chain from there on; `audit_head` (written in the same transaction as every append)
 * records the last seq and hash, so cutting entries off the tail is caught too — unless the
 * attacker also rewrites the head, which is why `head()` is exposed for anchoring elsewhere
 * (e.g. copied into MeshKit's config epoch or an operator's notes).
 */
import { createHash } from 'node:crypto'
import type { Db } from '../storage/database.ts'

export const GENESIS_HASH = '0'.repeat(64)

/** What the log records. */
export const AuditAction = {
  Publish: 'publish',
  Yank: 'yank',
  Revoke: 'revoke',
  TokenAdd: 'token-add',
  TokenRemove: 'token-remove',
} as const
export type AuditAction = (typeof AuditAction)[keyof typeof AuditAction]

export interface AuditInput {
  actor: string
  action: AuditAction
  /** What the action was about: `name@version`, a key id, a token id. */
  subject: string
  digest?: string
  /** `admitted`, `exists` (idempotent re-publish), `refused:<code>`, `ok`. */
  result: string
  detail?: Record<string, unknown>
}

export interface AuditEntry extends Required<Omit<AuditInput, 'digest'>> {
  seq: number
  at: string
  digest: string | null
  prevHash: string
  hash: string
}

export interface AuditProblem {
  /** The first entry that does not check out (for a deleted entry: the missing seq). */
  seq: number
  reason: 'hash_mismatch' | 'chain_broken' | 'entry_missing' | 'head_mismatch'
}

export interface AuditVerifyResult {
  ok: boolean
  entries: number
  head: { seq: number; hash: string }
  problem?: AuditProblem
}

interface Row {
  seq: number
  at: string
  actor: string
  action: string
  subject: string
  digest: string | null
  result: string
  detail: string
  prev_hash: string
  hash: string
}

/** The hash of one entry. Field order is fixed: changing it invalidates every existing log. */
export function entryHash(e: { seq: number; at: string; actor: string; action: string; subject: string; digest: string | null; result: string; detail: string; prevHash: string }): string {
  return createHash('sha256')
    .update(JSON.stringify([e.seq, e.at, e.actor, e.action, e.subject, e.digest, e.result, e.detail, e.prevHash]))
    .digest('hex')
}

export class AuditLog {
  readonly #db: Db
  readonly #head
  readonly #insert
  readonly #setHead

  constructor(db: Db) {
    this.#db = db
    this.#head = db.prepare<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_head WHERE id = 1')
    this.#insert = db.prepare(
      'INSERT INTO audit (seq, at, actor, action, subject, digest, result, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    )
    this.#setHead = db.prepare('INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash')
  }

  /**
   * Appends one entry. Call inside the transaction that performs the action, so the action
   * and its record commit together or not at all.
   *
   * @example
   * db.transaction(() => { insertRow(); audit.append({ actor: 'tok:ci', action: 'yank', subject: 'waf@1.2.0', result: 'ok' }) }).immediate()
   */
  append(input: AuditInput, now: Date = new Date()): AuditEntry {
    const write = (): AuditEntry => {
      const head = this.#head.get() ?? { seq: 0, hash: GENESIS_HASH }
      const e = {
        seq: head.seq + 1,
        at: now.toISOString(),
        actor: input.actor,
        action: input.action,
        subject: input.subject,
        digest: input.digest ?? null,
        result: input.result,
        detail: JSON.stringify(input.detail ?? {}),
        prevHash: head.hash,
      }
      const hash = entryHash(e)
      this.#insert.run(e.seq, e.at, e.actor, e.action, e.subject, e.digest, e.result, e.detail, e.prevHash, hash)
      this.#setHead.run(e.seq, hash)
      return { ...e, detail: input.detail ?? {}, hash }
    }
    return this.#db.transaction(write)()
  }

  head(): { seq: number; hash: string } {
    return this.#head.get() ?? { seq: 0, hash: GENESIS_HASH }
  }

  /** Entries with seq > `after`, oldest first, at most `limit`. */
  list(after = 0, limit = 100): AuditEntry[] {
    return this.#db
      .prepare<Row>('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?')
      .all(after, limit)
      .map(toEntry)
  }

  /**
   * Recomputes the whole chain. Reports the first entry that was edited (hash mismatch),
   * deleted (a gap), re-linked (chain broken) or cut off the tail (head mismatch).
   */
  verify(expectedHead?: { seq: number; hash: string }): AuditVerifyResult {
    let prev = GENESIS_HASH
    let expectSeq = 1
    let entries = 0
    const fail = (seq: number, reason: AuditProblem['reason']): AuditVerifyResult => ({ ok: false, entries, head: this.head(), problem: { seq, reason } })
    for (const row of this.#db.prepare<Row>('SELECT * FROM audit ORDER BY seq').all()) {
      if (row.seq !== expectSeq) return fail(expectSeq, 'entry_missing')
      if (row.prev_hash !== prev) return fail(row.seq, 'chain_broken')
      const want = entryHash({ ...row, prevHash: row.prev_hash })
      if (want !== row.hash) return fail(row.seq, 'hash_mismatch')
      prev = row.hash
      expectSeq++
      entries++
    }
    const head = expectedHead ?? this.head()
    if (head.seq > entries) return fail(entries + 1, 'entry_missing')
    if (head.seq < entries) return fail(head.seq + 1, 'head_mismatch')
    if (entries > 0 && head.hash !== prev) return fail(entries, 'head_mismatch')
    return { ok: true, entries, head: { seq: entries, hash: prev } }
  }
}

function toEntry(r: Row): AuditEntry {
  let detail: Record<string, unknown>
  try {
    detail = JSON.parse(r.detail) as Record<string, unknown>
  } catch {
    detail = { corrupt: r.detail }
  }
  return {
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    action: r.action as AuditAction,
    subject: r.subject,
    digest: r.digest,
    result: r.result,
    detail,
    prevHash: r.prev_hash,
    hash: r.hash,
  }
}

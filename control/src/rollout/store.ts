/**
 * Rollout state in SQLite (its own file next to central's): rollouts, their append-only
 * hash-chained history, the versions each filter slot ran (for rollback after promotion),
 * and kill rules. A central restart reads everything back and the manager carries on.
 */
import { createHash } from 'node:crypto'
import type { BetterSqlite3 } from 'better-sqlite3'
import { openDatabase } from '@meshkit/registry/storage/database.ts'
import type { Migration } from '@meshkit/registry/storage/migrations.ts'
import type { HistoryEntry, KillEntry, Rollout, RolloutState } from './types.ts'

type Db = BetterSqlite3.Database

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'rollouts, history, slot versions, kills',
    sql: `
      CREATE TABLE rollouts (id TEXT PRIMARY KEY, grp TEXT NOT NULL, slot TEXT NOT NULL, state TEXT NOT NULL, doc TEXT NOT NULL, created_ms INTEGER NOT NULL);
      CREATE INDEX rollouts_slot ON rollouts (grp, slot, state);
      CREATE TABLE history (seq INTEGER PRIMARY KEY, rollout TEXT NOT NULL, at_ms INTEGER NOT NULL, epoch INTEGER NOT NULL, event TEXT NOT NULL,
        state TEXT NOT NULL, weight_b INTEGER NOT NULL, reason TEXT NOT NULL, detail TEXT, hash TEXT NOT NULL);
      CREATE INDEX history_rollout ON history (rollout, seq);
      CREATE TABLE slot_versions (seq INTEGER PRIMARY KEY, grp TEXT NOT NULL, slot TEXT NOT NULL, version TEXT NOT NULL, at_ms INTEGER NOT NULL, epoch INTEGER NOT NULL);
      CREATE INDEX slot_versions_slot ON slot_versions (grp, slot, seq);
      CREATE TABLE kills (scope TEXT NOT NULL, target TEXT NOT NULL, reason TEXT, at_ms INTEGER NOT NULL, epoch INTEGER NOT NULL, PRIMARY KEY (scope, target));
    `,
  },
]

export class RolloutStore {
  readonly #db: Db

  private constructor(db: Db) {
    this.#db = db
  }

  static open(file: string): RolloutStore {
    return new RolloutStore(openDatabase(file, MIGRATIONS))
  }

  /** Runs `fn` in one transaction (a state change and its history entry land together). */
  tx<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate()
  }

  save(r: Rollout): void {
    this.#db
      .prepare('INSERT INTO rollouts (id, grp, slot, state, doc, created_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state, doc = excluded.doc')
      .run(r.id, r.group, `${r.chain}.${r.filter}`, r.state, JSON.stringify(r), r.createdMs)
  }

  get(id: string): Rollout | undefined {
    const row = this.#db.prepare<{ doc: string }>('SELECT doc FROM rollouts WHERE id = ?').get(id)
    return row && (JSON.parse(row.doc) as Rollout)
  }

  list(states?: readonly RolloutState[]): Rollout[] {
    const rows = states
      ? this.#db.prepare<{ doc: string }>(`SELECT doc FROM rollouts WHERE state IN (${states.map(() => '?').join(',')}) ORDER BY created_ms, id`).all(...states)
      : this.#db.prepare<{ doc: string }>('SELECT doc FROM rollouts ORDER BY created_ms, id').all()
    return rows.map((r) => JSON.parse(r.doc) as Rollout)
  }

  activeFor(group: string, slot: string, states: readonly RolloutState[]): Rollout | undefined {
    const row = this.#db
      .prepare<{ doc: string }>(`SELECT doc FROM rollouts WHERE grp = ? AND slot = ? AND state IN (${states.map(() => '?').join(',')}) LIMIT 1`)
      .get(group, slot, ...states)
    return row && (JSON.parse(row.doc) as Rollout)
  }

  append(e: Omit<HistoryEntry, 'seq' | 'hash'>): HistoryEntry {
    const prev = this.#db.prepare<{ hash: string }>('SELECT hash FROM history ORDER BY seq DESC LIMIT 1').get()?.hash ?? ''
    const detail = e.detail === undefined ? null : JSON.stringify(e.detail)
    const hash = createHash('sha256').update(prev).update(JSON.stringify([e.rollout, e.atMs, e.epoch, e.event, e.state, e.weightB, e.reason, detail])).digest('hex')
    const seq = Number(
      this.#db
        .prepare('INSERT INTO history (rollout, at_ms, epoch, event, state, weight_b, reason, detail, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(e.rollout, e.atMs, e.epoch, e.event, e.state, e.weightB, e.reason, detail, hash).lastInsertRowid,
    )
    return { ...e, seq, hash }
  }

  history(rollout?: string): HistoryEntry[] {
    type Row = { seq: number; rollout: string; at_ms: number; epoch: number; event: string; state: RolloutState; weight_b: number; reason: string; detail: string | null; hash: string }
    const rows = rollout === undefined ? this.#db.prepare<Row>('SELECT * FROM history ORDER BY seq').all() : this.#db.prepare<Row>('SELECT * FROM history WHERE rollout = ? ORDER BY seq').all(rollout)
    return rows.map((r) => ({
      seq: r.seq,
      rollout: r.rollout,
      atMs: r.at_ms,
      epoch: r.epoch,
      event: r.event,
      state: r.state,
      weightB: r.weight_b,
      reason: r.reason,
      ...(r.detail === null ? {} : { detail: JSON.parse(r.detail) as unknown }),
      hash: r.hash,
    }))
  }

  /** Recomputes the hash chain; returns the first bad seq, or 0 when intact. */
  verifyHistory(): number {
    let prev = ''
    for (const e of this.history()) {
      const detail = e.detail === undefined ? null : JSON.stringify(e.detail)
      const h = createHash('sha256').update(prev).update(JSON.stringify([e.rollout, e.atMs, e.epoch, e.event, e.state, e.weightB, e.reason, detail])).digest('hex')
      if (h !== e.hash) return e.seq
      prev = h
    }
    return 0
  }

  recordVersion(group: string, slot: string, version: string, atMs: number, epoch: number): void {
    const last = this.#db.prepare<{ version: string }>('SELECT version FROM slot_versions WHERE grp = ? AND slot = ? ORDER BY seq DESC LIMIT 1').get(group, slot)
    if (last?.version === version) return
    this.#db.prepare('INSERT INTO slot_versions (grp, slot, version, at_ms, epoch) VALUES (?, ?, ?, ?, ?)').run(group, slot, version, atMs, epoch)
  }

  /** Distinct versions the slot ran, newest first. */
  versions(group: string, slot: string, limit: number): { version: string; atMs: number; epoch: number }[] {
    const rows = this.#db
      .prepare<{ version: string; at_ms: number; epoch: number }>('SELECT version, at_ms, epoch FROM slot_versions WHERE grp = ? AND slot = ? ORDER BY seq DESC')
      .all(group, slot)
    const seen = new Set<string>()
    const out: { version: string; atMs: number; epoch: number }[] = []
    for (const r of rows) {
      if (seen.has(r.version)) continue
      seen.add(r.version)
      out.push({ version: r.version, atMs: r.at_ms, epoch: r.epoch })
      if (out.length >= limit) break
    }
    return out
  }

  kills(): KillEntry[] {
    return this.#db
      .prepare<{ scope: KillEntry['scope']; target: string; reason: string | null; at_ms: number; epoch: number }>('SELECT * FROM kills ORDER BY at_ms, scope, target')
      .all()
      .map((r) => ({ scope: r.scope, target: r.target, ...(r.reason === null ? {} : { reason: r.reason }), atMs: r.at_ms, epoch: r.epoch }))
  }

  putKill(k: KillEntry): void {
    this.#db.prepare('INSERT OR REPLACE INTO kills (scope, target, reason, at_ms, epoch) VALUES (?, ?, ?, ?, ?)').run(k.scope, k.target, k.reason ?? null, k.atMs, k.epoch)
  }

  deleteKill(scope: string, target: string): boolean {
    return this.#db.prepare('DELETE FROM kills WHERE scope = ? AND target = ?').run(scope, target).changes > 0
  }

  close(): void {
    this.#db.close()
  }
}

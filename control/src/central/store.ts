/**
 * Central's desired state in SQLite: groups of data planes (selected by node labels), the
 * config objects of each group (listeners, routes, clusters, filter chains, rollout splits,
 * stored as the JSON the API accepted), and the config epoch. Epochs come from one counter
 * for the whole process, persisted with the change that used it, so they only grow, across
 * restarts too, and a number names one config of one group.
 */
import type { BetterSqlite3 } from 'better-sqlite3'
import { openDatabase } from '@meshkit/registry/storage/database.ts'
import type { Migration } from '@meshkit/registry/storage/migrations.ts'

export type Db = BetterSqlite3.Database

/** Object kinds of a group, as they appear in API paths and in the group config document. */
export const ObjectKind = {
  listeners: 'listeners',
  routes: 'routes',
  clusters: 'clusters',
  filterChains: 'filterChains',
  splits: 'splits',
} as const
export type ObjectKind = (typeof ObjectKind)[keyof typeof ObjectKind]
export const OBJECT_KINDS: readonly ObjectKind[] = Object.values(ObjectKind)

export type Spec = Record<string, unknown> & { name: string }

/** A group's desired config: the document the API validates and central translates. */
export interface GroupConfig {
  listeners: Spec[]
  /** In match order. */
  routes: Spec[]
  clusters: Spec[]
  filterChains: Spec[]
  splits: Spec[]
}

export interface GroupRecord {
  name: string
  /** Node metadata labels a data plane must carry (all of them) to belong to this group. */
  selector: Record<string, string>
  /** Higher wins when several groups match a node. */
  priority: number
  /** Epoch of the group's current config; 0 until something was published. */
  epoch: number
  updatedAt: string
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'groups, objects, epoch counter',
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta (key, value) VALUES ('epoch', '0');
      CREATE TABLE groups (
        name TEXT PRIMARY KEY,
        selector TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        epoch INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
      );
      CREATE TABLE objects (
        grp TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        position INTEGER NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (grp, kind, name)
      );
    `,
  },
]

interface GroupRow {
  name: string
  selector: string
  priority: number
  epoch: number
  updated_at: string
}

function toRecord(r: GroupRow): GroupRecord {
  return { name: r.name, selector: JSON.parse(r.selector) as Record<string, string>, priority: r.priority, epoch: r.epoch, updatedAt: r.updated_at }
}

export class CentralStore {
  readonly #db: Db

  private constructor(db: Db) {
    this.#db = db
  }

  /** @example const store = CentralStore.open('/var/lib/meshkit/central.sqlite') */
  static open(file: string): CentralStore {
    return new CentralStore(openDatabase(file, MIGRATIONS))
  }

  get epoch(): number {
    return Number(this.#db.prepare<{ value: string }>("SELECT value FROM meta WHERE key = 'epoch'").get()!.value)
  }

  groups(): GroupRecord[] {
    return this.#db.prepare<GroupRow>('SELECT * FROM groups ORDER BY name').all().map(toRecord)
  }

  group(name: string): GroupRecord | undefined {
    const r = this.#db.prepare<GroupRow>('SELECT * FROM groups WHERE name = ?').get(name)
    return r && toRecord(r)
  }

  config(group: string): GroupConfig {
    const out: GroupConfig = { listeners: [], routes: [], clusters: [], filterChains: [], splits: [] }
    const rows = this.#db.prepare<{ kind: ObjectKind; spec: string }>('SELECT kind, spec FROM objects WHERE grp = ? ORDER BY kind, position, name').all(group)
    for (const r of rows) out[r.kind]?.push(JSON.parse(r.spec) as Spec)
    return out
  }

  /**
   * Writes a group (and, when given, its whole config) with the next epoch, in one
   * transaction. `commit` runs inside it after the epoch is taken: if it throws (the
   * snapshot could not be published), nothing is written.
   */
  save(group: Omit<GroupRecord, 'epoch' | 'updatedAt'>, config: GroupConfig | undefined, commit: (epoch: number) => void): number {
    const tx = this.#db.transaction(() => {
      const epoch = this.epoch + 1
      this.#db.prepare("UPDATE meta SET value = ? WHERE key = 'epoch'").run(String(epoch))
      const now = new Date().toISOString()
      this.#db
        .prepare(
          `INSERT INTO groups (name, selector, priority, epoch, updated_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(name) DO UPDATE SET selector = excluded.selector, priority = excluded.priority, epoch = excluded.epoch, updated_at = excluded.updated_at`,
        )
        .run(group.name, JSON.stringify(group.selector), group.priority, epoch, now)
      if (config !== undefined) {
        this.#db.prepare('DELETE FROM objects WHERE grp = ?').run(group.name)
        const ins = this.#db.prepare('INSERT INTO objects (grp, kind, name, position, spec) VALUES (?, ?, ?, ?, ?)')
        for (const kind of OBJECT_KINDS) config[kind].forEach((s, i) => ins.run(group.name, kind, s.name, i, JSON.stringify(s)))
      }
      commit(epoch)
      return epoch
    })
    return tx.immediate()
  }

  deleteGroup(name: string): boolean {
    return this.#db.prepare('DELETE FROM groups WHERE name = ?').run(name).changes > 0
  }

  close(): void {
    this.#db.close()
  }
}

/**
 * Opens the registry's SQLite file and brings its schema up to date. WAL so readers never
 * wait for a publish; synchronous=FULL because a publish acknowledged to a client must
 * survive a power cut (the blob fsyncs would be pointless otherwise).
 */
import Database from 'better-sqlite3'
import type { BetterSqlite3 } from 'better-sqlite3'
import { RegistryError, RegistryErrorCode } from '../errors.ts'
import { MIGRATIONS, type Migration } from './migrations.ts'

export type Db = BetterSqlite3.Database

/**
 * Opens (creating if needed) and migrates the database at `file`.
 *
 * @example
 * const db = openDatabase('/var/lib/meshkit/registry.sqlite')
 */
export function openDatabase(file: string, migrations: readonly Migration[] = MIGRATIONS): Db {
  const db = new Database(file, { timeout: 5000 })
  try {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.pragma('foreign_keys = ON')
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)')
    migrate(db, migrations)
    return db
  } catch (e) {
    db.close()
    throw e
  }
}

/** Applies missing migrations in order; refuses a database newer than this code. */
export function migrate(db: Db, migrations: readonly Migration[]): number[] {
  const applied = new Set(db.prepare<{ version: number }>('SELECT version FROM schema_migrations').all().map((r) => r.version))
  const known = Math.max(0, ...migrations.map((m) => m.version))
  const newest = Math.max(0, ...applied)
  if (newest > known) {
    throw new RegistryError(RegistryErrorCode.StorageCorrupt, `database schema version ${newest} is newer than this registry (${known})`, { status: 500 })
  }
  const done: number[] = []
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue
    // Immediate: two processes opening a fresh file at once must not both migrate.
    db.transaction(() => {
      const again = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(m.version)
      if (again) return
      db.exec(m.sql)
      db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)').run(m.version, m.description, new Date().toISOString())
      done.push(m.version)
    }).immediate()
  }
  return done
}

/** The schema version a database is at. */
export function schemaVersion(db: Db): number {
  return db.prepare<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations').get()?.v ?? 0
}

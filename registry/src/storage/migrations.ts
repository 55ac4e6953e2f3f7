/**
 * Schema migrations, versioned and append-only: a released migration is never edited; a
 * change is a new entry. `openDatabase` applies the missing ones in order, each in its own
 * transaction, and records them in `schema_migrations`.
 */

export interface Migration {
  version: number
  description: string
  sql: string
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'bundles, blobs, yanks, revocations, tokens, audit log',
    sql: `
      CREATE TABLE bundles (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        kind TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        manifest_digest TEXT NOT NULL,
        manifest TEXT NOT NULL,
        size INTEGER NOT NULL,
        instrumented_digest TEXT,
        capabilities TEXT NOT NULL,
        description TEXT,
        signer_key_id TEXT NOT NULL,
        signer_publisher TEXT NOT NULL,
        signer_fingerprint TEXT NOT NULL,
        published_by TEXT NOT NULL,
        published_at TEXT NOT NULL,
        admission TEXT NOT NULL,
        yanked_at TEXT,
        yank_reason TEXT,
        PRIMARY KEY (name, version)
      );
      CREATE INDEX bundles_signer ON bundles (signer_key_id);
      CREATE TABLE bundle_capabilities (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        capability TEXT NOT NULL,
        PRIMARY KEY (name, version, capability),
        FOREIGN KEY (name, version) REFERENCES bundles (name, version)
      );
      CREATE INDEX bundle_capabilities_cap ON bundle_capabilities (capability);
      CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        media_type TEXT NOT NULL
      );
      CREATE TABLE revocations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target_kind TEXT NOT NULL CHECK (target_kind IN ('digest', 'signer')),
        target TEXT NOT NULL,
        reason TEXT NOT NULL,
        revoked_by TEXT NOT NULL,
        revoked_at TEXT NOT NULL,
        UNIQUE (target_kind, target)
      );
      CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        names TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        digest TEXT,
        result TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
      );
      CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
      );
      -- Append-only from the application's side. Someone with the file can drop these
      -- triggers; the hash chain (and audit_head) is what detects that.
      CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
      CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    `,
  },
  {
    version: 2,
    description: 'index bundles by instrumented module (downloads check its owners)',
    sql: 'CREATE INDEX bundles_instrumented ON bundles (instrumented_digest);',
  },
]

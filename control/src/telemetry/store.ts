/**
 * Central's telemetry store (SQLite): one row per series per batch, stamped with central's
 * receive time, kept for `retentionMs` and at most `maxRows` rows (oldest go first). Latency
 * buckets are columns so a window's histogram is one SUM query.
 */
import type { BetterSqlite3 } from 'better-sqlite3'
import { openDatabase } from '@meshkit/registry/storage/database.ts'
import type { Migration } from '@meshkit/registry/storage/migrations.ts'
import { LATENCY_BOUNDS_MS, type BatchWire } from '@omnirelay/runtime/telemetry/proto.ts'

export type Db = BetterSqlite3.Database

const NB = LATENCY_BOUNDS_MS.length + 1
const LAT_COLS = Array.from({ length: NB }, (_, i) => `l${i}`)

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'telemetry series and batches',
    sql: `
      CREATE TABLE batches (
        node TEXT NOT NULL, seq INTEGER NOT NULL, start_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL, series INTEGER NOT NULL,
        dropped_batches INTEGER NOT NULL, dropped_series INTEGER NOT NULL,
        PRIMARY KEY (node, seq, start_ms)
      );
      CREATE INDEX batches_received ON batches (received_ms);
      CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        received_ms INTEGER NOT NULL,
        node TEXT NOT NULL, grp TEXT NOT NULL, epoch INTEGER NOT NULL,
        route TEXT NOT NULL, filter TEXT NOT NULL, version TEXT NOT NULL, variant TEXT NOT NULL,
        requests INTEGER NOT NULL,
        c1 INTEGER NOT NULL, c2 INTEGER NOT NULL, c3 INTEGER NOT NULL, c4 INTEGER NOT NULL, c5 INTEGER NOT NULL,
        local_replies INTEGER NOT NULL,
        ${LAT_COLS.map((c) => `${c} INTEGER NOT NULL`).join(', ')},
        latency_sum_ms REAL NOT NULL,
        trap_total INTEGER NOT NULL, traps TEXT,
        fuel_sum REAL NOT NULL, fuel_count INTEGER NOT NULL
      );
      CREATE INDEX series_filter_version ON series (filter, version, received_ms);
      CREATE INDEX series_received ON series (received_ms);
    `,
  },
]

export interface TelemetryStoreOptions {
  /** Keep rows this long (default 1 h). */
  retentionMs?: number
  /** Keep at most this many series rows (default 1,000,000). */
  maxRows?: number
  now?: () => number
}

/** Totals of one window for one selection. */
export interface WindowTotals {
  requests: number
  /** [1xx..5xx] */
  classes: number[]
  localReplies: number
  latency: number[]
  latencySumMs: number
  traps: number
  trapsByCode: Record<string, number>
  fuelSum: number
  fuelCount: number
  /** Data planes that reported into this selection. */
  nodes: number
}

export interface Selection {
  filter: string
  version: string
  /** Only rows received at or after this time (central clock, ms). */
  sinceMs: number
  /** Only rows produced under this epoch or a later one. */
  minEpoch?: number
  group?: string
  route?: string
  /** Only rows reported by this data plane (node id). */
  node?: string
}

/**
 * @example
 * const store = TelemetryStore.open(join(dataDir, 'telemetry.sqlite'))
 * store.insert(batch)
 * store.totals({ filter: 'edge.waf', version: '2.0.0', sinceMs: Date.now() - 60_000 })
 */
export class TelemetryStore {
  readonly #db: Db
  readonly #retentionMs: number
  readonly #maxRows: number
  readonly #now: () => number
  readonly #insertSeries: BetterSqlite3.Statement
  readonly #insertBatch: BetterSqlite3.Statement
  #insertsSincePrune = 0

  private constructor(db: Db, opts: TelemetryStoreOptions) {
    this.#db = db
    this.#retentionMs = opts.retentionMs ?? 3_600_000
    this.#maxRows = opts.maxRows ?? 1_000_000
    this.#now = opts.now ?? Date.now
    const cols = ['received_ms', 'node', 'grp', 'epoch', 'route', 'filter', 'version', 'variant', 'requests', 'c1', 'c2', 'c3', 'c4', 'c5', 'local_replies', ...LAT_COLS, 'latency_sum_ms', 'trap_total', 'traps', 'fuel_sum', 'fuel_count']
    this.#insertSeries = db.prepare(`INSERT INTO series (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`)
    this.#insertBatch = db.prepare('INSERT OR IGNORE INTO batches (node, seq, start_ms, received_ms, series, dropped_batches, dropped_series) VALUES (?, ?, ?, ?, ?, ?, ?)')
  }

  static open(file: string, opts: TelemetryStoreOptions = {}): TelemetryStore {
    const db = openDatabase(file, MIGRATIONS)
    // Telemetry may lose the last second on a power cut; it must not slow every insert.
    db.pragma('synchronous = NORMAL')
    return new TelemetryStore(db, opts)
  }

  /** Stores a batch; a batch seen before (same node, seq, start) stores nothing. Returns series stored. */
  insert(b: BatchWire): number {
    const now = this.#now()
    const stored = this.#db.transaction(() => {
      const fresh = this.#insertBatch.run(b.node, b.seq, b.startMs, now, b.series.length, b.droppedBatches, b.droppedSeries).changes > 0
      if (!fresh) return 0
      for (const s of b.series) {
        const lat = LAT_COLS.map((_, i) => s.latencyBuckets[i] ?? 0)
        const cls = [0, 1, 2, 3, 4].map((i) => s.responsesByClass[i] ?? 0)
        const traps = Object.values(s.traps).reduce((a, n) => a + Number(n), 0)
        this.#insertSeries.run(now, b.node, b.group, s.epoch, s.route, s.filter, s.version, s.variant, s.requests, ...cls, s.localReplies, ...lat, s.latencySumMs, traps, traps ? JSON.stringify(s.traps) : null, s.fuelSum, s.fuelCount)
      }
      return b.series.length
    })()
    if (++this.#insertsSincePrune >= 100) this.prune()
    return stored
  }

  /** Drops rows past retention and beyond the row cap. */
  prune(): void {
    this.#insertsSincePrune = 0
    const cut = this.#now() - this.#retentionMs
    this.#db.prepare('DELETE FROM series WHERE received_ms < ?').run(cut)
    this.#db.prepare('DELETE FROM batches WHERE received_ms < ?').run(cut)
    const n = this.#db.prepare<{ n: number }>('SELECT count(*) AS n FROM series').get()!.n
    if (n > this.#maxRows) this.#db.prepare('DELETE FROM series WHERE id IN (SELECT id FROM series ORDER BY id LIMIT ?)').run(n - this.#maxRows)
  }

  totals(sel: Selection): WindowTotals {
    const where = ['filter = ?', 'version = ?', 'received_ms >= ?']
    const args: unknown[] = [sel.filter, sel.version, sel.sinceMs]
    if (sel.minEpoch !== undefined) where.push('epoch >= ?'), args.push(sel.minEpoch)
    if (sel.group !== undefined) where.push('grp = ?'), args.push(sel.group)
    if (sel.route !== undefined) where.push('route = ?'), args.push(sel.route)
    if (sel.node !== undefined) where.push('node = ?'), args.push(sel.node)
    const w = where.join(' AND ')
    const row = this.#db
      .prepare<Record<string, number | null>>(
        `SELECT sum(requests) AS requests, sum(c1) AS c1, sum(c2) AS c2, sum(c3) AS c3, sum(c4) AS c4, sum(c5) AS c5,
           sum(local_replies) AS local_replies, ${LAT_COLS.map((c) => `sum(${c}) AS ${c}`).join(', ')},
           sum(latency_sum_ms) AS latency_sum_ms, sum(trap_total) AS traps, sum(fuel_sum) AS fuel_sum, sum(fuel_count) AS fuel_count,
           count(DISTINCT node) AS nodes
         FROM series WHERE ${w}`,
      )
      .get(...args)!
    const trapsByCode: Record<string, number> = {}
    if (row.traps) {
      for (const r of this.#db.prepare<{ traps: string }>(`SELECT traps FROM series WHERE ${w} AND traps IS NOT NULL`).all(...args)) {
        for (const [k, v] of Object.entries(JSON.parse(r.traps) as Record<string, number>)) trapsByCode[k] = (trapsByCode[k] ?? 0) + Number(v)
      }
    }
    const n = (k: string) => Number(row[k] ?? 0)
    return {
      requests: n('requests'),
      classes: ['c1', 'c2', 'c3', 'c4', 'c5'].map(n),
      localReplies: n('local_replies'),
      latency: LAT_COLS.map(n),
      latencySumMs: n('latency_sum_ms'),
      traps: n('traps'),
      trapsByCode,
      fuelSum: n('fuel_sum'),
      fuelCount: n('fuel_count'),
      nodes: n('nodes'),
    }
  }

  /** Reported drops (batches and series lost on data planes) since a time. */
  drops(sinceMs: number): { batches: number; series: number } {
    const r = this.#db.prepare<{ b: number | null; s: number | null }>('SELECT sum(dropped_batches) AS b, sum(dropped_series) AS s FROM batches WHERE received_ms >= ?').get(sinceMs)!
    return { batches: r.b ?? 0, series: r.s ?? 0 }
  }

  get rows(): number {
    return this.#db.prepare<{ n: number }>('SELECT count(*) AS n FROM series').get()!.n
  }

  close(): void {
    this.#db.close()
  }
}

/**
 * Follows the registry's revocation list: a conditional GET (`If-None-Match`) every
 * `intervalMs`, so an unchanged list costs a 304. A changed list replaces the node's list,
 * is persisted, and `onChange` runs (the proxy rebuilds its running config without the
 * revoked code). A failed poll keeps the last list, is logged (rate-limited to changes of
 * state) and counted. Polls never overlap; the timer does not keep the process alive.
 */
import { resolve } from 'node:path'
import type { ProxyConfig } from '../config/types.ts'
import type { Logger } from '../observability/logger.ts'
import type { GaugeChild, MetricsRegistry } from '../observability/metrics.ts'
import { RevocationList, type RevocationSnapshot } from './revocation-list.ts'
import { readRevocations, writeRevocations } from './revocation-store.ts'

/** One conditional fetch, as `pollRevocations` of `@meshkit/registry` does it. */
export type RevocationFetch = (
  url: string,
  opts: { token?: string; etag?: string },
) => Promise<{ changed: false; etag: string } | { changed: true; etag: string; list: { serial: number; digests: string[]; signers: string[] } }>

export interface RevocationPollerOptions {
  /** Registry base URL. */
  url: string
  /** Read token, when the registry protects reads. */
  token?: string
  intervalMs: number
  /** Where the list is persisted. */
  file: string
  /** The list to keep up to date (default: a new one). */
  list?: RevocationList
  log: Logger
  metrics: MetricsRegistry
  /** Runs after the revoked set changed (not for a 304 or a serial bump with the same set). */
  onChange?: (list: RevocationList) => void | Promise<void>
  /** Default: `pollRevocations` from `@meshkit/registry` (loaded on first use). */
  fetch?: RevocationFetch
  /** Per-poll time limit. Default: the interval, between 1 s and 10 s. */
  timeoutMs?: number
}

/** Metric names (part of the operator contract). */
export const REVOKED_METRIC = 'omnirelay_bundles_revoked'
export const REVOCATION_AGE_METRIC = 'omnirelay_revocations_age_seconds'
export const REVOCATION_POLLS_METRIC = 'omnirelay_revocation_polls_total'

/**
 * @example
 * const poller = new RevocationPoller({ url: 'http://registry:7070', intervalMs: 30_000, file: 'data/revocations.json', log, metrics, onChange: () => proxy.rebuild() })
 * await poller.loadPersisted()   // refuse what was known revoked, even with the registry down
 * poller.start()
 */
export class RevocationPoller {
  readonly list: RevocationList
  readonly #o: RevocationPollerOptions
  readonly #digests: GaugeChild
  readonly #signers: GaugeChild
  readonly #age: GaugeChild
  readonly #serial: GaugeChild
  readonly #polls: Record<'changed' | 'unchanged' | 'failed', { inc(): void }>
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #stopped = false
  #failing = false
  #fetch: RevocationFetch | undefined

  constructor(o: RevocationPollerOptions) {
    this.#o = o
    this.list = o.list ?? new RevocationList()
    this.#fetch = o.fetch
    const revoked = o.metrics.gauge(REVOKED_METRIC, 'Entries in the revocation list this node enforces, by kind (digest = bundle versions, signer = key ids)', ['kind'])
    this.#digests = revoked.labels('digest')
    this.#signers = revoked.labels('signer')
    this.#age = o.metrics.gauge(REVOCATION_AGE_METRIC, 'Seconds since the registry last confirmed the revocation list (-1: never); updated at each poll').labels()
    this.#serial = o.metrics.gauge('omnirelay_revocations_serial', 'Serial of the revocation list this node enforces (-1: none)').labels()
    const polls = o.metrics.counter(REVOCATION_POLLS_METRIC, 'Polls of the registry revocation list, by result', ['result'])
    this.#polls = { changed: polls.labels('changed'), unchanged: polls.labels('unchanged'), failed: polls.labels('failed') }
    this.#gauges()
  }

  /**
   * Loads the persisted list, if any. A damaged file is logged and ignored (the first poll
   * replaces it); it never makes the node believe less is revoked than a good file said.
   */
  async loadPersisted(): Promise<void> {
    try {
      const snap = await readRevocations(this.#o.file)
      if (snap) this.list.replace(snap)
    } catch (e) {
      this.#o.log.error('persisted revocation list unreadable; waiting for the registry', { file: this.#o.file, err: e })
    }
    this.#gauges()
  }

  /** Polls now, then every interval until `stop()`. */
  start(): void {
    if (this.#timer !== undefined || this.#running) return
    this.#stopped = false
    void this.pollNow()
  }

  /** One poll (a running one is joined, not doubled). Resolves when it and its `onChange` are done. */
  pollNow(): Promise<void> {
    this.#running ??= this.#poll().finally(() => {
      this.#running = undefined
      if (!this.#stopped) {
        clearTimeout(this.#timer)
        this.#timer = setTimeout(() => void this.pollNow(), this.#o.intervalMs)
        this.#timer.unref()
      }
    })
    return this.#running
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#running
  }

  async #poll(): Promise<void> {
    const o = this.#o
    let r: Awaited<ReturnType<RevocationFetch>>
    try {
      this.#fetch ??= (await import('@meshkit/registry/client/revocations.ts')).pollRevocations as RevocationFetch
      const opts: { token?: string; etag?: string } = {}
      if (o.token) opts.token = o.token
      if (this.list.etag) opts.etag = this.list.etag
      r = await withTimeout(this.#fetch(o.url, opts), o.timeoutMs ?? Math.min(10_000, Math.max(1_000, o.intervalMs)))
    } catch (e) {
      this.#polls.failed.inc()
      if (!this.#failing) {
        this.#failing = true
        o.log.warn('revocation poll failed; keeping the last list', { registry: o.url, serial: this.list.serial, code: (e as { code?: string }).code, err: e })
      }
      this.#gauges()
      return
    }
    if (this.#failing) {
      this.#failing = false
      o.log.info('revocation poll recovered', { registry: o.url })
    }
    const now = Date.now()
    if (!r.changed) {
      this.#polls.unchanged.inc()
      this.list.confirm(now)
      this.#gauges()
      return
    }
    const snap: RevocationSnapshot = { ...r.list, etag: r.etag, confirmedAt: new Date(now).toISOString() }
    const changed = this.list.replace(snap)
    this.#polls[changed ? 'changed' : 'unchanged'].inc()
    this.#gauges()
    await writeRevocations(o.file, this.list.snapshot()).catch((e: unknown) => o.log.error('could not persist the revocation list', { file: o.file, err: e }))
    if (!changed) return
    o.log.warn('revocation list changed', { serial: this.list.serial, digests: this.list.digestCount, signers: this.list.signerCount })
    try {
      await o.onChange?.(this.list)
    } catch (e) {
      o.log.error('applying the revocation list failed', { err: e })
    }
  }

  #gauges(): void {
    this.#digests.set(this.list.digestCount)
    this.#signers.set(this.list.signerCount)
    this.#serial.set(this.list.serial)
    const at = this.list.confirmedAt
    this.#age.set(at === undefined ? -1 : Math.max(0, Math.round((Date.now() - at) / 1000)))
  }
}

/**
 * The poller a config's `registry` section asks for (token from config, else env
 * `OMNIRELAY_REGISTRY_TOKEN`), or undefined without one. Not started: load, build, then start.
 *
 * @example
 * const poller = pollerForConfig(cfg, log, metrics, () => rebuild())
 * await poller?.loadPersisted()
 */
export function pollerForConfig(config: ProxyConfig, log: Logger, metrics: MetricsRegistry, onChange: () => void | Promise<void>): RevocationPoller | undefined {
  const reg = config.registry
  if (!reg) return undefined
  const token = reg.token ?? process.env.OMNIRELAY_REGISTRY_TOKEN
  return new RevocationPoller({
    url: reg.url,
    ...(token ? { token } : {}),
    intervalMs: reg.pollIntervalMs,
    file: resolve(config.baseDir, reg.revocationsFile),
    log,
    metrics,
    onChange,
  })
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout
  return Promise.race([
    p,
    new Promise<never>((_, fail) => {
      t = setTimeout(() => fail(Object.assign(new Error(`no answer within ${ms} ms`), { code: 'timeout' })), ms)
    }),
  ]).finally(() => clearTimeout(t))
}

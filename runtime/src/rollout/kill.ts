/**
 * The data-plane half of the kill switch: a killed filter keeps its slot in the chain but
 * every request it sees fails with `unavailable`, so the executor applies the filter's own
 * failure policy — fail-open skips it, fail-closed (and reload) answer 503. Nothing of the
 * killed version runs.
 */
import { FilterError, FilterErrorCode, type FailurePolicy, type FilterFactory, type StreamFilter } from '../pipeline/filter.ts'
import { Phase } from '../pipeline/phases.ts'

/** Why a filter was killed, as central sent it. */
export interface KillReason {
  /** What matched: the filter, its bundle version, or its signer. */
  scope: 'filter' | 'bundle' | 'signer'
  /** Operator's words; never sent to clients. */
  reason?: string
}

/**
 * @example
 * const killed = new KilledFilterFactory(factory, { scope: 'bundle' })
 * // same name and failure policy; each request fails the filter with `unavailable`
 */
export class KilledFilterFactory implements FilterFactory {
  readonly name: string
  readonly kind: FilterFactory['kind']
  readonly phases: number
  readonly failurePolicy: FailurePolicy
  readonly version: string | undefined
  readonly killed: KillReason
  readonly original: FilterFactory
  // One shared filter: its hooks only throw, and one prebuilt error avoids a stack capture per request.
  readonly #filter: StreamFilter

  constructor(original: FilterFactory, killed: KillReason) {
    this.original = original
    this.name = original.name
    this.kind = original.kind
    // Request headers at least: the failure must happen before anything reaches upstream.
    this.phases = original.phases | Phase.RequestHeaders
    this.failurePolicy = original.failurePolicy
    this.version = original.version
    this.killed = killed
    const err = new FilterError(original.name, FilterErrorCode.Unavailable, `disabled by kill switch (${killed.scope})`)
    const fail = (): never => {
      throw err
    }
    this.#filter = { onRequestHeaders: fail, onRequestBody: fail, onRequestTrailers: fail, onResponseHeaders: fail, onResponseBody: fail, onResponseTrailers: fail }
  }

  createStream(): StreamFilter {
    return this.#filter
  }

  /** The original stays owned by whoever built it (unkill puts it back). */
  async close(): Promise<void> {}
}

/** Kill rules as central sends them; `matches` decides whether a factory is killed. */
export interface KillRule {
  scope: 'filter' | 'bundle' | 'signer'
  /** filter: the filter (slot) name; bundle: `name@version`; signer: signer identity. */
  target: string
  reason?: string
}

/** Applies kill rules to a factory; returns it unchanged when no rule matches. */
export function applyKills(f: FilterFactory, rules: readonly KillRule[], identity: { bundle?: string; signer?: string } = {}): FilterFactory {
  for (const r of rules) {
    const hit = r.scope === 'filter' ? r.target === f.name : r.scope === 'bundle' ? r.target === identity.bundle : r.target === identity.signer
    if (hit) return new KilledFilterFactory(f, r.reason === undefined ? { scope: r.scope } : { scope: r.scope, reason: r.reason })
  }
  return f
}

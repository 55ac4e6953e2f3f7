/**
 * One consistent, versioned set of resources for a group of data planes, with
 * the config epoch it was published as. Immutable; views per client capability
 * class are computed once and memoized.
 */
import { createHash } from 'node:crypto'
import { compareDelivery, EPOCH_RESOURCE_NAME, TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { unmetRequirement, type ClientCapabilities } from './capabilities.ts'
import { CacheErrorCode, XdsCacheError } from './errors.ts'
import { makeResource, type MarshaledVariant, type XdsResource } from './resource.ts'

/** What one client sees of one type: the variant it can run per name, and what it cannot. */
export interface TypeView {
  readonly typeUrl: string
  readonly entries: ReadonlyMap<string, MarshaledVariant>
  /** name -> why the client gets nothing for it. */
  readonly withheld: ReadonlyMap<string, string>
  /** Hash of all entries (names and versions); equal hash, equal content. */
  readonly hash: string
}

const EMPTY_VIEW_ENTRIES: ReadonlyMap<string, MarshaledVariant> = new Map()

export class Snapshot {
  readonly epoch: number
  readonly #byType = new Map<string, Map<string, XdsResource>>()
  readonly #views = new Map<string, Map<string, TypeView>>()
  readonly #typeUrls: readonly string[]

  /**
   * @example
   * const snap = new Snapshot(7, [makeResource(TypeUrl.Cluster, 'api', { name: 'api', ... })])
   */
  constructor(epoch: number, resources: Iterable<XdsResource>) {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError('epoch must be a non-negative integer')
    this.epoch = epoch
    for (const r of resources) {
      let m = this.#byType.get(r.typeUrl)
      if (m === undefined) this.#byType.set(r.typeUrl, (m = new Map()))
      if (m.has(r.name)) {
        throw new XdsCacheError(CacheErrorCode.DuplicateResource, `duplicate resource ${r.typeUrl} ${r.name}`)
      }
      m.set(r.name, r)
    }
    // Every snapshot carries its end-of-epoch marker (clients that subscribe apply epochs atomically).
    if (!this.#byType.has(TypeUrl.Epoch)) {
      this.#byType.set(TypeUrl.Epoch, new Map([[EPOCH_RESOURCE_NAME, makeResource(TypeUrl.Epoch, EPOCH_RESOURCE_NAME, { epoch })]]))
    }
    this.#typeUrls = [...this.#byType.keys()].sort(compareDelivery)
  }

  /** Type URLs present, in make-before-break delivery order. */
  get typeUrls(): readonly string[] {
    return this.#typeUrls
  }

  resources(typeUrl: string): ReadonlyMap<string, XdsResource> {
    return this.#byType.get(typeUrl) ?? new Map()
  }

  /** The view for one capability class; computed on first use, then shared by every such client. */
  view(typeUrl: string, caps: ClientCapabilities): TypeView {
    let perCaps = this.#views.get(typeUrl)
    if (perCaps === undefined) this.#views.set(typeUrl, (perCaps = new Map()))
    let v = perCaps.get(caps.key)
    if (v === undefined) {
      v = this.#computeView(typeUrl, caps)
      perCaps.set(caps.key, v)
    }
    return v
  }

  #computeView(typeUrl: string, caps: ClientCapabilities): TypeView {
    const resources = this.#byType.get(typeUrl)
    if (resources === undefined) return { typeUrl, entries: EMPTY_VIEW_ENTRIES, withheld: new Map(), hash: hashEntries(EMPTY_VIEW_ENTRIES) }
    const entries = new Map<string, MarshaledVariant>()
    const withheld = new Map<string, string>()
    for (const r of resources.values()) {
      let reason: string | undefined
      for (const v of r.variants) {
        const unmet = unmetRequirement(v.requires, caps)
        if (unmet === undefined) {
          entries.set(r.name, v)
          reason = undefined
          break
        }
        reason ??= unmet
      }
      if (reason !== undefined) withheld.set(r.name, reason)
    }
    return { typeUrl, entries, withheld, hash: hashEntries(entries) }
  }

  /**
   * References that do not resolve inside this snapshot (e.g. a listener naming
   * a missing route configuration), in any variant.
   */
  consistencyErrors(): string[] {
    const errors: string[] = []
    for (const [typeUrl, m] of this.#byType) {
      for (const r of m.values()) {
        const missing = new Set<string>()
        for (const v of r.variants) {
          for (const ref of v.refs) {
            if (!this.#byType.get(ref.typeUrl)?.has(ref.name)) missing.add(`${shortType(ref.typeUrl)} ${ref.name}`)
          }
        }
        for (const m of missing) errors.push(`${shortType(typeUrl)} ${r.name} references missing ${m}`)
      }
    }
    return errors
  }
}

/** Hash of name/version pairs, order-independent. */
export function hashEntries(entries: ReadonlyMap<string, MarshaledVariant>, only?: Iterable<string>): string {
  const names = only === undefined ? [...entries.keys()] : [...only].filter((n) => entries.has(n))
  names.sort()
  const h = createHash('sha256')
  for (const n of names) h.update(n).update('\0').update(entries.get(n)!.version).update('\n')
  return h.digest('base64url').slice(0, 12)
}

function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1)
}

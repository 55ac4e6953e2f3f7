/**
 * State-of-the-world ADS (StreamAggregatedResources) for one client stream.
 *
 * Per type it tracks what the client has (optimistically the last response,
 * rolled back to the last ACKed one on NACK), what it refused, and its
 * subscription. Versions are `<epoch>.<content hash>`: the epoch travels to the
 * client, the hash decides whether there is anything new to send.
 */
import type { DiscoveryRequest } from '@omnirelay/runtime/xds/proto/messages.ts'
import { compareDelivery, EPOCH_RESOURCE_NAME, isFullStateType, TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import type { MarshaledVariant } from '../../cache/resource.ts'
import { hashEntries, type Snapshot } from '../../cache/snapshot.ts'
import { encodeDiscoveryResponseBytes } from '../../wire/response-encoder.ts'
import { AdsStream, type AdsStreamOptions, type NackState, type StreamTransport } from '../stream-base.ts'

interface Held {
  hash: string
  entries: ReadonlyMap<string, MarshaledVariant>
}

interface SotwType extends NackState {
  typeUrl: string
  wildcard: boolean
  /** The client has sent an explicit name list at least once (an empty list then means "none", not wildcard). */
  explicit: boolean
  names: Set<string>
  lastNonce: string | undefined
  /** What the client holds, as far as we know. */
  client: Held
  acked: Held
  inflight: (Held & { nonce: string }) | undefined
  /** Content the client refused; never sent again. */
  nackedHash: string | undefined
  /** EDS names owed a response although unchanged: their cluster was just (re)sent and is warming. */
  forced: Set<string>
}

const NOTHING: Held = { hash: '', entries: new Map() }

/** `<epoch>.<hash>` -> hash; anything else -> '' (unknown content). */
function hashOfVersion(versionInfo: string): string {
  const dot = versionInfo.lastIndexOf('.')
  return dot === -1 ? '' : versionInfo.slice(dot + 1)
}

export class SotwStream extends AdsStream {
  readonly #types = new Map<string, SotwType>()

  /**
   * @example
   * const stream = new SotwStream({ cache }, { send: (bytes) => call.write(bytes), close: () => call.end() }, 's1')
   * call.on('data', (req) => stream.handle(req))
   */
  constructor(opts: AdsStreamOptions, transport: StreamTransport, streamId: string) {
    super('sotw', opts, transport, streamId)
  }
  #sends = 0

  /** Feeds one request from the client. */
  handle(req: DiscoveryRequest): void {
    if (!this.acceptNode(req.node, req.typeUrl)) return
    let t = this.#types.get(req.typeUrl)
    const first = t === undefined
    if (t === undefined) {
      // A reconnecting client names the version it holds; if it matches, nothing is resent.
      const held: Held = { hash: req.responseNonce === '' ? hashOfVersion(req.versionInfo) : '', entries: new Map() }
      t = {
        typeUrl: req.typeUrl, wildcard: false, explicit: false, names: new Set(), lastNonce: undefined,
        client: held, acked: held, inflight: undefined, nackedHash: undefined, forced: new Set(),
        nackCount: 0, lastNackAt: 0, timer: undefined,
      }
      this.#types.set(req.typeUrl, t)
    }
    // Nothing was sent for a new type on this stream, so a nonce there (left over from
    // an earlier stream) cannot be stale: the request still subscribes.
    const stale = !first && req.responseNonce !== '' && req.responseNonce !== t.lastNonce
    this.call('onRequest', this.dp, { typeUrl: req.typeUrl, nonce: req.responseNonce, stale, resourceNames: req.resourceNames })
    // A newer response is in flight; this request answers an older one and is superseded.
    if (stale) return

    if (req.responseNonce !== '' && t.inflight?.nonce === req.responseNonce) {
      const sent = t.inflight
      t.inflight = undefined
      if (req.errorDetail !== undefined) {
        t.nackedHash = sent.hash
        t.client = t.acked
        t.nackCount++
        t.lastNackAt = Date.now()
        const p = this.dp.nacked(sent.nonce, req.errorDetail)
        if (p) this.reportNack({ typeUrl: t.typeUrl, nonce: sent.nonce, epoch: p.epoch, version: p.version, error: req.errorDetail })
      } else {
        t.acked = sent
        t.nackCount = 0
        t.nackedHash = undefined
        const p = this.dp.acked(sent.nonce)
        if (p) this.call('onAck', this.dp, { typeUrl: t.typeUrl, nonce: sent.nonce, epoch: p.epoch, version: p.version })
      }
    }

    const changed = this.#subscribe(t, req.resourceNames)
    if ((first || changed) && this.snapshot !== undefined) {
      const sends = this.#sends
      this.#evaluate(t, this.snapshot, false)
      if (this.#sends !== sends) this.#endPass(t, this.snapshot)
      this.dp.evaluated(this.snapshot.epoch)
    }
  }

  /** After a request-triggered send: the marker tells the client this batch is complete. */
  #endPass(sentType: SotwType, snap: Snapshot): void {
    const marker = this.#types.get(TypeUrl.Epoch)
    if (marker === undefined || marker === sentType) return
    marker.forced.add(EPOCH_RESOURCE_NAME)
    this.#evaluate(marker, snap, false)
  }

  /** Applies the request's name list; true when the subscription changed. */
  #subscribe(t: SotwType, names: readonly string[]): boolean {
    let wildcard: boolean
    const set = new Set<string>()
    if (names.length === 0) {
      // Legacy wildcard: an empty list means "all" only until the client has named something.
      wildcard = !t.explicit && isFullStateType(t.typeUrl)
    } else {
      wildcard = false
      for (const n of names) {
        if (n === '*') wildcard = true
        else set.add(n)
      }
      t.explicit = true
    }
    const changed = wildcard !== t.wildcard || set.size !== t.names.size || [...set].some((n) => !t.names.has(n))
    t.wildcard = wildcard
    t.names = set
    return changed
  }

  #desired(t: SotwType, snap: Snapshot): Held {
    const view = snap.view(t.typeUrl, this.dp.capabilities)
    this.reportWithheld(view, (n) => t.wildcard || t.names.has(n), snap.epoch)
    if (t.wildcard) return { hash: view.hash, entries: view.entries }
    const entries = new Map<string, MarshaledVariant>()
    for (const n of t.names) {
      const v = view.entries.get(n)
      if (v !== undefined) entries.set(n, v)
    }
    return { hash: hashEntries(entries), entries }
  }

  /**
   * Sends the type if the client lacks its current content. With `makeBeforeBreak`
   * a full-state type that drops names first gets the union of old and new (so
   * nothing still referenced disappears); the caller sends the exact set later.
   * Returns true when a removal-only follow-up is still owed.
   */
  #evaluate(t: SotwType, snap: Snapshot, makeBeforeBreak: boolean): boolean {
    const want = this.#desired(t, snap)
    if (want.hash === t.client.hash) {
      let owed = false
      for (const n of t.forced) if (want.entries.has(n)) owed = true
      t.forced.clear()
      if (owed) {
        this.#send(t, snap.epoch, want)
        return false
      }
      if (t.inflight === undefined) this.dp.inSync(t.typeUrl)
      return false
    }
    if (want.hash === t.nackedHash) return false
    if (!isFullStateType(t.typeUrl)) {
      // Name-addressed types (RDS/EDS): absence in a response deletes nothing, so a
      // change that only drops names needs no message, and nothing-yet means wait.
      let onlyDrops = true
      for (const [n, v] of want.entries) if (t.client.entries.get(n) !== v) onlyDrops = false
      if (onlyDrops) {
        if (t.client.entries.size > 0) t.client = want
        return false
      }
    }
    const wait = this.backoffRemaining(t)
    if (wait > 0) {
      this.schedule(t, wait, () => this.#retry(t))
      return false
    }
    if (makeBeforeBreak && isFullStateType(t.typeUrl)) {
      let dropsNames = false
      for (const n of t.client.entries.keys()) if (!want.entries.has(n)) dropsNames = true
      if (dropsNames) {
        const union = new Map(t.client.entries)
        for (const [n, v] of want.entries) union.set(n, v)
        const unionHash = hashEntries(union)
        if (unionHash !== t.client.hash) this.#send(t, snap.epoch, { hash: unionHash, entries: union })
        return true
      }
    }
    this.#send(t, snap.epoch, want)
    return false
  }

  #retry(t: SotwType): void {
    if (this.snapshot === undefined) return
    const sends = this.#sends
    this.#evaluate(t, this.snapshot, false)
    if (this.#sends !== sends) this.#endPass(t, this.snapshot)
    this.dp.evaluated(this.snapshot.epoch)
  }

  protected onSnapshot(snap: Snapshot): void {
    // A client that applies whole epochs (it subscribed to the marker) refuses an epoch, not a
    // resource: content refused with a bad companion must be offered again with the next epoch.
    if (this.#types.has(TypeUrl.Epoch)) for (const t of this.#types.values()) t.nackedHash = undefined
    const types = [...this.#types.values()].filter((t) => t.typeUrl !== TypeUrl.Epoch).sort((a, b) => compareDelivery(a.typeUrl, b.typeUrl))
    const owed: SotwType[] = []
    for (const t of types) if (this.#evaluate(t, snap, true)) owed.push(t)
    // Removals last, in reverse order: routes stop pointing at a cluster before it goes.
    for (const t of owed.reverse()) this.#evaluate(t, snap, false)
    // Then the end-of-epoch marker.
    const marker = this.#types.get(TypeUrl.Epoch)
    if (marker !== undefined) this.#evaluate(marker, snap, false)
    this.dp.evaluated(snap.epoch)
  }

  #send(t: SotwType, epoch: number, held: Held): void {
    this.#sends++
    const warming = t.typeUrl === TypeUrl.Cluster ? this.#edsNamesOfChanged(t.client.entries, held.entries) : []
    t.forced.clear()
    const nonce = this.nextNonce()
    const version = `${epoch}.${held.hash}`
    const anys: Buffer[] = []
    for (const v of held.entries.values()) anys.push(v.anyBytes)
    this.transport.send(encodeDiscoveryResponseBytes(version, t.typeUrl, nonce, anys, this.opts.controlPlaneId))
    t.lastNonce = nonce
    t.client = held
    t.inflight = { ...held, nonce }
    this.dp.sent(t.typeUrl, nonce, epoch, version, true)
    this.call('onResponse', this.dp, { typeUrl: t.typeUrl, nonce, epoch, version, resources: [...held.entries.keys()], removed: [] })
    // Envoy keeps an updated cluster warming until it gets its endpoints, even unchanged ones.
    const eds = this.#types.get(TypeUrl.ClusterLoadAssignment)
    if (warming.length > 0 && eds !== undefined && this.snapshot !== undefined) {
      for (const n of warming) eds.forced.add(n)
      this.#evaluate(eds, this.snapshot, false)
    }
  }

  #edsNamesOfChanged(before: ReadonlyMap<string, MarshaledVariant>, after: ReadonlyMap<string, MarshaledVariant>): string[] {
    const out: string[] = []
    for (const [name, v] of after) {
      if (before.get(name) === v) continue
      for (const ref of v.refs) if (ref.typeUrl === TypeUrl.ClusterLoadAssignment) out.push(ref.name)
    }
    return out
  }

  protected clearTimers(): void {
    for (const t of this.#types.values()) if (t.timer !== undefined) clearTimeout(t.timer)
  }
}

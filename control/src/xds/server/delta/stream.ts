/**
 * Incremental ADS (DeltaAggregatedResources) for one client stream.
 *
 * Per type it tracks the version of each resource the client has (seeded from
 * initial_resource_versions on reconnect, updated optimistically on send, rolled
 * back on NACK), the versions it refused, and its subscriptions. Only resources
 * whose version differs are sent; names it has that vanished go in
 * removed_resources. system_version_info carries the config epoch.
 */
import type { DeltaDiscoveryRequest } from '@omnirelay/runtime/xds/proto/messages.ts'
import { compareDelivery, EPOCH_RESOURCE_NAME, TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import type { MarshaledVariant } from '../../cache/resource.ts'
import type { Snapshot } from '../../cache/snapshot.ts'
import { encodeDeltaDiscoveryResponseBytes } from '../../wire/response-encoder.ts'
import { AdsStream, type AdsStreamOptions, type NackState, type StreamTransport } from '../stream-base.ts'

/** Unanswered responses kept per type; see #send. */
const MAX_INFLIGHT = 64

/** A refused removal is remembered with this version so it is not retried in a loop. */
const REMOVAL = ''

interface Inflight {
  /** name -> version the client had before this response (undefined: had none). */
  prev: Map<string, string | undefined>
  /** name -> version sent, REMOVAL for removals. */
  sent: Map<string, string>
}

interface DeltaType extends NackState {
  typeUrl: string
  wildcard: boolean
  names: Set<string>
  client: Map<string, string>
  nacked: Map<string, string>
  inflight: Map<string, Inflight>
}

type Phase = 'all' | 'upserts' | 'removals'

export class DeltaStream extends AdsStream {
  readonly #types = new Map<string, DeltaType>()

  /**
   * @example
   * const stream = new DeltaStream({ cache }, { send: (bytes) => call.write(bytes), close: () => call.end() }, 's1')
   * call.on('data', (req) => stream.handle(req))
   */
  constructor(opts: AdsStreamOptions, transport: StreamTransport, streamId: string) {
    super('delta', opts, transport, streamId)
  }
  /** #types in delivery order; rebuilt when a type is added. */
  #ordered: DeltaType[] | undefined

  handle(req: DeltaDiscoveryRequest): void {
    if (!this.acceptNode(req.node, req.typeUrl)) return
    let t = this.#types.get(req.typeUrl)
    const first = t === undefined
    if (t === undefined) {
      t = {
        typeUrl: req.typeUrl,
        // Legacy wildcard: a first request naming nothing subscribes to everything.
        wildcard: req.resourceNamesSubscribe.length === 0,
        names: new Set(), client: new Map(Object.entries(req.initialResourceVersions)), nacked: new Map(),
        inflight: new Map(), nackCount: 0, lastNackAt: 0, timer: undefined,
      }
      this.#types.set(req.typeUrl, t)
      this.#ordered = undefined
    }
    const inflight = req.responseNonce === '' ? undefined : t.inflight.get(req.responseNonce)
    const stale = req.responseNonce !== '' && inflight === undefined
    this.call('onRequest', this.dp, {
      typeUrl: req.typeUrl, nonce: req.responseNonce, stale,
      subscribe: req.resourceNamesSubscribe, unsubscribe: req.resourceNamesUnsubscribe,
    })

    if (inflight !== undefined) this.#answer(t, req, inflight)

    // Subscription changes count even when the nonce is stale.
    let changed = first
    for (const n of req.resourceNamesSubscribe) {
      if (n === '*') {
        if (!t.wildcard) changed = true
        t.wildcard = true
      } else if (!t.names.has(n)) {
        t.names.add(n)
        changed = true
      }
    }
    for (const n of req.resourceNamesUnsubscribe) {
      if (n === '*') {
        if (t.wildcard) changed = true
        t.wildcard = false
        // The client forgets what it only had through the wildcard.
        for (const name of [...t.client.keys()]) if (!t.names.has(name)) this.#forget(t, name)
      } else if (t.names.delete(n) || t.client.has(n)) {
        // Unsubscribed names are forgotten, so subscribing again sends them again.
        if (!t.wildcard) this.#forget(t, n)
        changed = true
      }
    }
    if (changed && this.snapshot !== undefined) {
      if (this.#evaluate(t, this.snapshot, 'all')) this.#endPass(t, this.snapshot)
      this.dp.evaluated(this.snapshot.epoch)
    }
  }

  /** After a request-triggered send: the marker tells the client this batch is complete. */
  #endPass(sentType: DeltaType, snap: Snapshot): void {
    const marker = this.#types.get(TypeUrl.Epoch)
    if (marker === undefined || marker === sentType) return
    marker.client.delete(EPOCH_RESOURCE_NAME)
    this.#evaluate(marker, snap, 'all')
  }

  #forget(t: DeltaType, name: string): void {
    t.client.delete(name)
    t.nacked.delete(name)
  }

  #answer(t: DeltaType, req: DeltaDiscoveryRequest, inflight: Inflight): void {
    const nonce = req.responseNonce
    t.inflight.delete(nonce)
    if (req.errorDetail !== undefined) {
      for (const [name, version] of inflight.sent) {
        // Roll back only what no later response has changed again.
        if ((t.client.get(name) ?? REMOVAL) === version) {
          const prev = inflight.prev.get(name)
          if (prev === undefined) t.client.delete(name)
          else t.client.set(name, prev)
        }
        t.nacked.set(name, version)
      }
      t.nackCount++
      t.lastNackAt = Date.now()
      const p = this.dp.nacked(nonce, req.errorDetail)
      if (p) this.reportNack({ typeUrl: t.typeUrl, nonce, epoch: p.epoch, version: p.version, error: req.errorDetail })
    } else {
      // A version of these names was accepted: an older refusal no longer says anything.
      for (const name of inflight.sent.keys()) t.nacked.delete(name)
      t.nackCount = 0
      const p = this.dp.acked(nonce)
      if (p) this.call('onAck', this.dp, { typeUrl: t.typeUrl, nonce, epoch: p.epoch, version: p.version })
    }
  }

  /** Sends what the client lacks of this type; true if something was sent. */
  #evaluate(t: DeltaType, snap: Snapshot, phase: Phase): boolean {
    const view = snap.view(t.typeUrl, this.dp.capabilities)
    if (view.withheld.size > 0) this.reportWithheld(view, (n) => t.wildcard || t.names.has(n), snap.epoch)
    const upserts: [string, MarshaledVariant][] = []
    const removals: string[] = []
    let blocked = false
    // Hot for big fleets (every stream, every type, every snapshot): no closures in the loops.
    if (phase !== 'removals') {
      for (const [name, v] of view.entries) {
        if (!(t.wildcard || t.names.has(name)) || t.client.get(name) === v.version) continue
        if (t.nacked.get(name) === v.version) blocked = true
        else upserts.push([name, v])
      }
    }
    if (phase !== 'upserts') {
      for (const name of t.client.keys()) {
        if (view.entries.has(name)) continue
        if (t.nacked.get(name) === REMOVAL) blocked = true
        else removals.push(name)
      }
    }
    if (upserts.length === 0 && removals.length === 0) {
      if (!blocked && phase === 'all' && t.inflight.size === 0) this.dp.inSync(t.typeUrl)
      return false
    }
    const wait = this.backoffRemaining(t)
    if (wait > 0) {
      this.schedule(t, wait, () => {
        if (this.snapshot === undefined) return
        if (this.#evaluate(t, this.snapshot, 'all')) this.#endPass(t, this.snapshot)
        this.dp.evaluated(this.snapshot.epoch)
      })
      return false
    }
    this.#send(t, snap.epoch, upserts, removals)
    return true
  }

  protected onSnapshot(snap: Snapshot): void {
    // A client that applies whole epochs (it subscribed to the marker) refuses an epoch, not a
    // resource: content refused with a bad companion must be offered again with the next epoch.
    if (this.#types.has(TypeUrl.Epoch)) for (const t of this.#types.values()) t.nacked.clear()
    if (this.#ordered === undefined) {
      this.#ordered = [...this.#types.values()].filter((t) => t.typeUrl !== TypeUrl.Epoch).sort((a, b) => compareDelivery(a.typeUrl, b.typeUrl))
    }
    const types = this.#ordered
    // Make-before-break: every addition/update in dependency order, then removals in
    // reverse, then the end-of-epoch marker.
    for (let i = 0; i < types.length; i++) this.#evaluate(types[i]!, snap, 'upserts')
    for (let i = types.length - 1; i >= 0; i--) this.#evaluate(types[i]!, snap, 'removals')
    const marker = this.#types.get(TypeUrl.Epoch)
    if (marker !== undefined) this.#evaluate(marker, snap, 'all')
    this.dp.evaluated(snap.epoch)
  }

  #send(t: DeltaType, epoch: number, upserts: [string, MarshaledVariant][], removals: string[]): void {
    const nonce = this.nextNonce()
    const version = String(epoch)
    const inflight: Inflight = { prev: new Map(), sent: new Map() }
    const bytes: Buffer[] = []
    for (const [name, v] of upserts) {
      bytes.push(v.deltaBytes)
      inflight.prev.set(name, t.client.get(name))
      inflight.sent.set(name, v.version)
      t.client.set(name, v.version)
    }
    for (const name of removals) {
      inflight.prev.set(name, t.client.get(name))
      inflight.sent.set(name, REMOVAL)
      t.client.delete(name)
    }
    this.transport.send(encodeDeltaDiscoveryResponseBytes(version, t.typeUrl, nonce, bytes, removals, this.opts.controlPlaneId))
    t.inflight.set(nonce, inflight)
    // A client that never answers must not grow this without bound: the oldest
    // unanswered response is then treated as superseded (its ACK becomes stale).
    if (t.inflight.size > MAX_INFLIGHT) {
      const oldest = t.inflight.keys().next().value!
      t.inflight.delete(oldest)
      this.dp.forget(oldest)
    }
    this.dp.sent(t.typeUrl, nonce, epoch, version, false)
    this.call('onResponse', this.dp, { typeUrl: t.typeUrl, nonce, epoch, version, resources: upserts.map(([n]) => n), removed: removals })
    // Envoy keeps an updated cluster warming until it gets its endpoints, even
    // unchanged ones: forget the endpoint versions so they are sent again.
    const eds = t.typeUrl === TypeUrl.Cluster ? this.#types.get(TypeUrl.ClusterLoadAssignment) : undefined
    if (eds !== undefined && this.snapshot !== undefined) {
      let owed = false
      for (const [, v] of upserts) {
        for (const ref of v.refs) {
          if (ref.typeUrl === TypeUrl.ClusterLoadAssignment && eds.client.delete(ref.name)) owed = true
        }
      }
      if (owed) this.#evaluate(eds, this.snapshot, 'upserts')
    }
  }

  protected clearTimers(): void {
    for (const t of this.#types.values()) if (t.timer !== undefined) clearTimeout(t.timer)
  }
}

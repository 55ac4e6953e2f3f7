/**
 * OmniRelay's xDS client, protocol half: one ADS stream (delta by default, or
 * SotW) to the control plane, node identity and capabilities on the first
 * request, updates handed to an async apply callback one at a time in arrival
 * order (the server sends in make-before-break order), ACK when it resolves,
 * NACK with its error when it rejects (the caller keeps its previous state),
 * reconnect with exponential backoff and jitter, and on reconnect the versions
 * it holds so nothing unchanged is resent. It knows nothing about OmniRelay's
 * config; the translation layer sits in `onResources`.
 */
import * as grpc from '@grpc/grpc-js'
import { silentLogger, type Logger } from '../../observability/logger.ts'
import {
  decodeDeltaDiscoveryResponse,
  decodeDiscoveryResponse,
  encodeDeltaDiscoveryRequest,
  encodeDiscoveryRequest,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type RpcStatus,
  type XdsNode,
} from '../proto/messages.ts'
import type { JsonValue } from '../proto/struct.ts'
import { DELIVERY_ORDER, isFullStateType, TypeUrl } from '../type-urls.ts'
import { Backoff, type BackoffOptions } from './backoff.ts'
import { XdsClientError, XdsClientErrorCode } from './errors.ts'

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService'
const GRPC_INVALID_ARGUMENT = 3

/** One resource as received: still encoded; decode with `decodeResource(typeUrl, value)`. */
export interface ReceivedResource {
  readonly name: string
  /** Delta: the resource version; SotW: the response version_info. */
  readonly version: string
  readonly value: Uint8Array
}

export interface XdsUpdate {
  readonly typeUrl: string
  /** Config epoch of the snapshot this came from (MeshKit servers), else undefined. */
  readonly epoch: number | undefined
  /** Delta: system_version_info; SotW: version_info. */
  readonly version: string
  /** Added or changed (delta), or every resource of the response (SotW). */
  readonly resources: readonly ReceivedResource[]
  /** Names that no longer exist for this client. */
  readonly removed: readonly string[]
}

export interface XdsClientNode {
  id: string
  cluster?: string
  /** Node metadata (labels); MeshKit groups data planes by it. */
  metadata?: Record<string, JsonValue>
  clientFeatures?: string[]
  userAgentName?: string
  userAgentVersion?: string
  locality?: { region: string; zone: string; subZone: string }
}

export interface XdsClientOptions {
  /** `host:port` of the control plane. */
  address: string
  node: XdsClientNode
  /** Announced in node metadata (`omnirelay.abis`, `omnirelay.host_kinds`) for capability negotiation. */
  capabilities?: { abis?: string[]; hostKinds?: string[] }
  protocol?: 'delta' | 'sotw'
  /** Types to subscribe to; `names` omitted means wildcard. Default: every known type, wildcard. */
  subscriptions?: readonly { typeUrl: string; names?: readonly string[] }[]
  /**
   * Applies one type's update. Resolve to ACK; throw/reject to NACK with the
   * error's message (and `code`). Give this or `onEpoch`.
   */
  onResources?: (update: XdsUpdate) => Promise<void> | void
  /**
   * Atomic mode: all updates of an epoch are held until the server's end-of-epoch
   * marker, then applied together; resolve to ACK them all, throw to NACK them all
   * (the previous epoch stays in force). Needs a MeshKit server (omnirelay.v1.Epoch).
   */
  onEpoch?: (batch: XdsEpochBatch) => Promise<void> | void
  onStatus?: (status: XdsClientStatus) => void
  backoff?: BackoffOptions
  credentials?: grpc.ChannelCredentials
  /**
   * HTTP/2 keepalive ping interval on the stream (default 30 s), so a control plane
   * that vanished without closing is noticed. Servers that police pings (grpc-go's
   * default minimum is 5 min) need a larger value.
   */
  keepaliveMs?: number
  logger?: Logger
}

export type XdsConnectionState = 'connecting' | 'connected' | 'backoff' | 'closed'

export interface XdsClientStatus {
  state: XdsConnectionState
  /** Epoch of the last update applied (ACKed). */
  appliedEpoch: number | undefined
  /** Epoch of the last update refused (NACKed), with the reason. */
  refused: { epoch: number | undefined; typeUrl: string; message: string } | undefined
  connects: number
  acks: number
  nacks: number
  lastError: string | undefined
  /** Delay before the next reconnect attempt, while in backoff. */
  retryInMs: number | undefined
}

interface TypeSub {
  typeUrl: string
  wildcard: boolean
  names: Set<string>
  /** Delta: name -> version accepted. SotW: names accepted (version in `sotwVersion`). */
  versions: Map<string, string>
  sotwVersion: string
  sotwNonce: string
}

type AnyResponse = DeltaDiscoveryResponse | DiscoveryResponse

interface Pending {
  res: AnyResponse
  s: TypeSub
  update: XdsUpdate
}

/** Everything one epoch changed, delivered at once (see `onEpoch`). */
export interface XdsEpochBatch {
  readonly epoch: number | undefined
  /** Per-type updates in arrival (make-before-break) order. */
  readonly updates: readonly XdsUpdate[]
}

export interface XdsClient {
  readonly status: XdsClientStatus
  /** Names (and versions) currently held for a type. */
  held(typeUrl: string): ReadonlyMap<string, string>
  /** Adds names (or the wildcard) to a type's subscription; sent at once if connected. */
  subscribe(typeUrl: string, names?: readonly string[]): void
  unsubscribe(typeUrl: string, names: readonly string[]): void
  close(): Promise<void>
}

/**
 * @example
 * const client = createXdsClient({
 *   address: '127.0.0.1:18000',
 *   node: { id: 'edge-1', metadata: { 'meshkit.group': 'edge' } },
 *   capabilities: { abis: ['proxy-wasm/0.2.1'], hostKinds: ['wasm', 'quickjs'] },
 *   onResources: async ({ typeUrl, resources, removed }) => { await apply(typeUrl, resources, removed) },
 * })
 */
export function createXdsClient(opts: XdsClientOptions): XdsClient {
  if (!opts.address || !opts.node?.id) throw new XdsClientError(XdsClientErrorCode.BadOptions, 'address and node.id are required')
  if ((opts.onResources === undefined) === (opts.onEpoch === undefined)) {
    throw new XdsClientError(XdsClientErrorCode.BadOptions, 'give exactly one of onResources and onEpoch')
  }
  return new AdsClient(opts)
}

class AdsClient implements XdsClient {
  readonly #opts: XdsClientOptions
  readonly #log: Logger
  readonly #protocol: 'delta' | 'sotw'
  readonly #node: XdsNode
  readonly #grpc: grpc.Client
  readonly #backoff: Backoff
  readonly #subs = new Map<string, TypeSub>()
  #call: grpc.ClientDuplexStream<DeltaDiscoveryRequest | DiscoveryRequest, AnyResponse> | undefined
  #generation = 0
  #nodeSent = false
  #timer: NodeJS.Timeout | undefined
  #queue: Promise<void> = Promise.resolve()
  #batch: Pending[] = []
  #closed = false
  readonly #status: XdsClientStatus = {
    state: 'connecting', appliedEpoch: undefined, refused: undefined, connects: 0, acks: 0, nacks: 0,
    lastError: undefined, retryInMs: undefined,
  }

  constructor(opts: XdsClientOptions) {
    this.#opts = opts
    this.#log = opts.logger ?? silentLogger
    this.#protocol = opts.protocol ?? 'delta'
    this.#backoff = new Backoff(opts.backoff)
    const metadata: Record<string, JsonValue> = { ...opts.node.metadata }
    if (opts.capabilities?.abis) metadata['omnirelay.abis'] = opts.capabilities.abis
    if (opts.capabilities?.hostKinds) metadata['omnirelay.host_kinds'] = opts.capabilities.hostKinds
    this.#node = {
      id: opts.node.id,
      cluster: opts.node.cluster ?? '',
      metadata,
      userAgentName: opts.node.userAgentName ?? 'omnirelay',
      userAgentVersion: opts.node.userAgentVersion ?? '0.1.0',
      clientFeatures: opts.node.clientFeatures ?? [],
      ...(opts.node.locality ? { locality: opts.node.locality } : {}),
    }
    const subs: readonly { typeUrl: string; names?: readonly string[] }[] = opts.subscriptions ?? DELIVERY_ORDER.map((typeUrl) => ({ typeUrl }))
    const wanted = opts.onEpoch !== undefined && !subs.some((s) => s.typeUrl === TypeUrl.Epoch) ? [...subs, { typeUrl: TypeUrl.Epoch }] : subs
    for (const s of wanted) {
      this.#subs.set(s.typeUrl, {
        typeUrl: s.typeUrl, wildcard: s.names === undefined, names: new Set(s.names ?? []),
        versions: new Map(), sotwVersion: '', sotwNonce: '',
      })
    }
    this.#grpc = new grpc.Client(opts.address, opts.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': opts.keepaliveMs ?? 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    })
    this.#connect()
  }

  get status(): XdsClientStatus {
    return { ...this.#status }
  }

  held(typeUrl: string): ReadonlyMap<string, string> {
    return new Map(this.#subs.get(typeUrl)?.versions)
  }

  #setState(state: XdsConnectionState, retryInMs?: number): void {
    this.#status.state = state
    this.#status.retryInMs = retryInMs
    try {
      this.#opts.onStatus?.(this.status)
    } catch (e) {
      // Runs inside gRPC event handlers: a throwing hook must not take the process down.
      this.#log.warn('xds onStatus hook threw', { err: e })
    }
  }

  #connect(): void {
    if (this.#closed) return
    const gen = ++this.#generation
    this.#nodeSent = false
    // A half-received epoch from the lost stream was neither applied nor ACKed.
    this.#batch = []
    this.#setState('connecting')
    const path = this.#protocol === 'delta' ? `${SERVICE}/DeltaAggregatedResources` : `${SERVICE}/StreamAggregatedResources`
    const call =
      this.#protocol === 'delta'
        ? this.#grpc.makeBidiStreamRequest(path, (r: DeltaDiscoveryRequest) => encodeDeltaDiscoveryRequest(r), decodeDeltaDiscoveryResponse)
        : this.#grpc.makeBidiStreamRequest(path, (r: DiscoveryRequest) => encodeDiscoveryRequest(r), decodeDiscoveryResponse)
    this.#call = call as grpc.ClientDuplexStream<DeltaDiscoveryRequest | DiscoveryRequest, AnyResponse>
    this.#status.connects++
    call.on('data', (res: AnyResponse) => {
      if (gen !== this.#generation) return
      if (this.#status.state !== 'connected') {
        this.#backoff.reset()
        this.#setState('connected')
      }
      // One update at a time, in arrival order: a later type may depend on an earlier one.
      this.#queue = this.#queue.then(() => this.#apply(gen, res))
    })
    const lost = (why: string) => {
      if (gen !== this.#generation || this.#closed) return
      this.#generation++
      this.#status.lastError = why
      const delay = this.#backoff.next()
      this.#log.warn('xds stream lost, reconnecting', { reason: why, retryInMs: delay })
      this.#setState('backoff', delay)
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        this.#connect()
      }, delay)
    }
    call.on('error', (e: grpc.ServiceError) => lost(`${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`))
    call.on('end', () => lost('stream ended by server'))
    // Initial requests: what we subscribe to and, on reconnect, what we already hold.
    for (const s of this.#subs.values()) this.#sendInitial(s)
  }

  #write(req: DeltaDiscoveryRequest | DiscoveryRequest): void {
    if (!this.#nodeSent) {
      req.node = this.#node
      this.#nodeSent = true
    }
    this.#call?.write(req)
  }

  #sendInitial(s: TypeSub): void {
    if (this.#protocol === 'delta') {
      this.#write({
        typeUrl: s.typeUrl,
        resourceNamesSubscribe: s.wildcard ? ['*', ...s.names] : [...s.names],
        resourceNamesUnsubscribe: [],
        initialResourceVersions: Object.fromEntries(s.versions),
        responseNonce: '',
      })
    } else {
      this.#write({ versionInfo: s.sotwVersion, resourceNames: this.#sotwNames(s), typeUrl: s.typeUrl, responseNonce: '' })
    }
  }

  /** Explicit `*` for wildcard: the legacy empty list means wildcard only for LDS/CDS. */
  #sotwNames(s: TypeSub): string[] {
    return s.wildcard ? ['*', ...s.names] : [...s.names]
  }

  async #apply(gen: number, res: AnyResponse): Promise<void> {
    if (gen !== this.#generation || this.#closed) return
    const s = this.#subs.get(res.typeUrl)
    if (s === undefined) {
      this.#nack(res, s, { code: GRPC_INVALID_ARGUMENT, message: `not subscribed to ${res.typeUrl}` })
      return
    }
    const update = 'systemVersionInfo' in res ? this.#deltaUpdate(res) : this.#sotwUpdate(s, res)
    const onEpoch = this.#opts.onEpoch
    if (res.typeUrl !== TypeUrl.Epoch) {
      if (onEpoch !== undefined) {
        // Held back until the marker closes the epoch; applied and answered together.
        this.#batch.push({ res, s, update })
        return
      }
      const error = await this.#run(() => this.#opts.onResources!(update))
      this.#settle(gen, [{ res, s, update }], error)
      return
    }
    // The end-of-epoch marker.
    const batch = this.#batch.splice(0)
    const error = onEpoch === undefined ? undefined : await this.#run(() => onEpoch({ epoch: update.epoch, updates: batch.map((b) => b.update) }))
    this.#settle(gen, [...batch, { res, s, update }], error)
  }

  /** Runs an apply callback; its failure becomes the NACK's error_detail. */
  async #run(fn: () => Promise<void> | void): Promise<RpcStatus | undefined> {
    try {
      await fn()
      return undefined
    } catch (e) {
      const err = e as { code?: unknown; message?: unknown }
      const message = `${typeof err.code === 'string' ? `${err.code}: ` : ''}${typeof err.message === 'string' ? err.message : String(e)}`
      return { code: GRPC_INVALID_ARGUMENT, message }
    }
  }

  /** ACKs (and holds) or NACKs each applied response, in order. */
  #settle(gen: number, items: Pending[], error: RpcStatus | undefined): void {
    for (const { res, s, update } of items) {
      if (error !== undefined) {
        this.#status.nacks++
        this.#status.refused = { epoch: update.epoch, typeUrl: res.typeUrl, message: error.message }
        if (gen === this.#generation) this.#nack(res, s, error)
        continue
      }
      // Accepted: it is now what we hold, whatever happens to the stream.
      if ('systemVersionInfo' in res) {
        for (const r of res.resources) s.versions.set(r.name, r.version)
        for (const n of res.removedResources) s.versions.delete(n)
      } else {
        s.versions = new Map(update.resources.map((r) => [r.name, r.version]))
        s.sotwVersion = res.versionInfo
      }
      this.#status.acks++
      if (update.epoch !== undefined) this.#status.appliedEpoch = update.epoch
      if (gen !== this.#generation) continue
      if ('systemVersionInfo' in res) {
        this.#write({ typeUrl: res.typeUrl, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: res.nonce })
      } else {
        s.sotwNonce = res.nonce
        this.#write({ versionInfo: res.versionInfo, resourceNames: this.#sotwNames(s), typeUrl: res.typeUrl, responseNonce: res.nonce })
      }
    }
  }

  #nack(res: AnyResponse, s: TypeSub | undefined, error: RpcStatus): void {
    if ('systemVersionInfo' in res) {
      this.#write({ typeUrl: res.typeUrl, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: res.nonce, errorDetail: error })
    } else {
      if (s) s.sotwNonce = res.nonce
      this.#write({ versionInfo: s?.sotwVersion ?? '', resourceNames: s ? this.#sotwNames(s) : [], typeUrl: res.typeUrl, responseNonce: res.nonce, errorDetail: error })
    }
  }

  #deltaUpdate(res: DeltaDiscoveryResponse): XdsUpdate {
    return {
      typeUrl: res.typeUrl,
      epoch: epochOf(res.systemVersionInfo),
      version: res.systemVersionInfo,
      resources: res.resources.map((r) => ({ name: r.name, version: r.version, value: r.resource?.value ?? new Uint8Array(0) })),
      removed: res.removedResources,
    }
  }

  #sotwUpdate(s: TypeSub, res: DiscoveryResponse): XdsUpdate {
    const resources: ReceivedResource[] = []
    const names = new Set<string>()
    for (const a of res.resources) {
      const name = resourceNameOf(a.typeUrl, a.value)
      names.add(name)
      resources.push({ name, version: res.versionInfo, value: a.value })
    }
    // SotW: for full-state types a name missing from the response is deleted.
    const removed = isFullStateType(res.typeUrl) ? [...s.versions.keys()].filter((n) => !names.has(n)) : []
    return { typeUrl: res.typeUrl, epoch: epochOf(res.versionInfo), version: res.versionInfo, resources, removed }
  }

  subscribe(typeUrl: string, names?: readonly string[]): void {
    let s = this.#subs.get(typeUrl)
    const isNew = s === undefined
    if (s === undefined) {
      s = { typeUrl, wildcard: false, names: new Set(), versions: new Map(), sotwVersion: '', sotwNonce: '' }
      this.#subs.set(typeUrl, s)
    }
    if (names === undefined) s.wildcard = true
    else for (const n of names) s.names.add(n)
    if (this.#call === undefined || this.#status.state === 'backoff') return
    if (this.#protocol === 'delta') {
      this.#write({ typeUrl, resourceNamesSubscribe: names === undefined ? ['*'] : [...names], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: '' })
    } else if (isNew) {
      this.#sendInitial(s)
    } else {
      this.#write({ versionInfo: s.sotwVersion, resourceNames: this.#sotwNames(s), typeUrl, responseNonce: s.sotwNonce })
    }
  }

  unsubscribe(typeUrl: string, names: readonly string[]): void {
    const s = this.#subs.get(typeUrl)
    if (s === undefined) return
    for (const n of names) {
      if (n === '*') s.wildcard = false
      s.names.delete(n)
      s.versions.delete(n)
    }
    if (this.#call === undefined || this.#status.state === 'backoff') return
    if (this.#protocol === 'delta') {
      this.#write({ typeUrl, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [...names], initialResourceVersions: {}, responseNonce: '' })
    } else {
      this.#write({ versionInfo: s.sotwVersion, resourceNames: this.#sotwNames(s), typeUrl, responseNonce: s.sotwNonce })
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#generation++
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#call?.cancel()
    this.#call = undefined
    this.#setState('closed')
    await this.#queue.catch(() => {})
    this.#grpc.close()
  }
}

/** MeshKit versions start with the epoch (`7` or `7.<hash>`); other servers' versions yield undefined. */
function epochOf(version: string): number | undefined {
  const m = /^(\d+)(?:\.|$)/.exec(version)
  return m ? Number(m[1]) : undefined
}

/**
 * SotW responses carry bare `Any`s; the resource name is inside the message. Every
 * type we handle has `string name = 1` except ClusterLoadAssignment (`cluster_name = 1`),
 * so reading field 1 is enough and avoids decoding the whole message here.
 */
function resourceNameOf(_typeUrl: string, value: Uint8Array): string {
  let pos = 0
  while (pos < value.length) {
    const [tag, p1] = readVarint(value, pos)
    pos = p1
    const field = tag >>> 3
    const wt = tag & 7
    if (wt === 2) {
      const [len, p2] = readVarint(value, pos)
      if (field === 1) return Buffer.from(value.buffer, value.byteOffset + p2, len).toString('utf8')
      pos = p2 + len
    } else if (wt === 0) pos = readVarint(value, pos)[1]
    else if (wt === 1) pos += 8
    else if (wt === 5) pos += 4
    else break
  }
  return ''
}

function readVarint(b: Uint8Array, pos: number): [number, number] {
  let result = 0
  let mul = 1
  for (;;) {
    if (pos >= b.length) return [result, b.length]
    const byte = b[pos++]!
    result += (byte & 0x7f) * mul
    if (byte < 0x80) return [result, pos]
    mul *= 128
  }
}

/**
 * What SotW and delta ADS streams share: the first request's node, the watch on
 * the node's group, nonces, NACK backoff, safe callbacks, and closing once.
 * Transport-agnostic: a stream gets request objects and hands back bytes.
 */
import { randomBytes } from 'node:crypto'
import type { XdsNode } from '@omnirelay/runtime/xds/proto/messages.ts'
import { silentLogger, type Logger } from '@omnirelay/runtime/observability/logger.ts'
import { capabilitiesOf } from '../cache/capabilities.ts'
import type { SnapshotCache } from '../cache/snapshot-cache.ts'
import type { Snapshot, TypeView } from '../cache/snapshot.ts'
import type { CloseEvent, NackEvent, XdsCallbacks } from './callbacks.ts'
import { DataPlane } from './data-plane.ts'

/** gRPC status codes used when the server ends a stream. */
export const GrpcStatus = { InvalidArgument: 3, Unavailable: 14 } as const

export interface StreamTransport {
  /** Writes one encoded response message. */
  send(bytes: Buffer): void
  /**
   * True while the client is not reading (the write buffer is full). Snapshot
   * pushes then wait and coalesce: the client gets the newest state once it
   * drains, not every intermediate one. The transport calls `stream.drained()`.
   */
  congested?(): boolean
  /** Ends the stream; with a status when the server refuses the client. */
  close(status?: { code: number; message: string }): void
}

export interface NackBackoff {
  /** Delay before sending a type again after its second consecutive NACK; doubles after each further one. */
  baseMs: number
  maxMs: number
}

export interface AdsStreamOptions {
  cache: SnapshotCache
  callbacks?: XdsCallbacks
  logger?: Logger
  /** Sent as control_plane.identifier in every response. */
  controlPlaneId?: string
  nackBackoff?: NackBackoff
}

const PROCESS_NONCE = randomBytes(6).toString('base64url')

export const DEFAULT_NACK_BACKOFF: NackBackoff = { baseMs: 500, maxMs: 30_000 }

/** Per-type NACK bookkeeping shared by both protocols. */
export interface NackState {
  nackCount: number
  lastNackAt: number
  timer: NodeJS.Timeout | undefined
}

export abstract class AdsStream {
  protected readonly opts: AdsStreamOptions
  protected readonly transport: StreamTransport
  protected readonly log: Logger
  protected snapshot: Snapshot | undefined
  #dp: DataPlane | undefined
  #unwatch: (() => void) | undefined
  #nonceSeq = 0
  // Nonces carry a per-process random prefix and the stream id, so one from a
  // previous stream (or a previous server process) can never match.
  readonly #noncePrefix: string
  readonly #streamId: string
  #closed = false
  #deferred = false
  readonly #reportedWithheld = new Set<string>()
  #reportedEpoch = -1
  readonly #backoff: NackBackoff

  constructor(
    readonly protocol: 'sotw' | 'delta',
    opts: AdsStreamOptions,
    transport: StreamTransport,
    streamId: string,
  ) {
    this.opts = opts
    this.transport = transport
    this.log = opts.logger ?? silentLogger
    this.#streamId = streamId
    this.#noncePrefix = `${PROCESS_NONCE}${streamId}`
    this.#backoff = opts.nackBackoff ?? DEFAULT_NACK_BACKOFF
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Undefined until the first request arrived. */
  get dataPlane(): DataPlane | undefined {
    return this.#dp
  }

  protected get dp(): DataPlane {
    return this.#dp!
  }

  /**
   * Handles the node of a request: required on the first one, ignored after
   * (clients may omit it). Returns false when the stream was closed.
   */
  protected acceptNode(node: XdsNode | undefined, typeUrl: string): boolean {
    if (this.#closed) return false
    if (this.#dp === undefined) {
      if (node === undefined || node.id === '') {
        this.fail('first request carries no node id')
        return false
      }
      const group = this.opts.cache.groupOf(node)
      this.#dp = new DataPlane(this.#streamId, this.protocol, node, group, capabilitiesOf(node))
      this.log.debug('xds stream open', { streamId: this.#streamId, protocol: this.protocol, node: node.id, group })
      this.call('onStreamOpen', this.#dp)
      this.snapshot = this.opts.cache.getSnapshot(group)
      this.#unwatch = this.opts.cache.watch(group, (s) => {
        if (this.#closed) return
        this.snapshot = s
        if (this.transport.congested?.() === true) {
          this.#deferred = true
          return
        }
        this.#push(s)
      })
    }
    if (typeUrl === '') {
      this.fail('request carries no type_url')
      return false
    }
    this.#dp.lastSeen = Date.now()
    return true
  }

  #push(s: Snapshot): void {
    try {
      this.onSnapshot(s)
    } catch (e) {
      this.log.error('xds stream failed on snapshot', { streamId: this.#streamId, err: e })
      this.fail('internal error')
    }
  }

  /** The transport can take writes again: push the newest snapshot if one was held back. */
  drained(): void {
    if (!this.#deferred || this.#closed || this.snapshot === undefined) return
    this.#deferred = false
    this.#push(this.snapshot)
  }

  /** A new snapshot for this stream's group. */
  protected abstract onSnapshot(snapshot: Snapshot): void

  protected abstract clearTimers(): void

  protected nextNonce(): string {
    return `${this.#noncePrefix}.${++this.#nonceSeq}`
  }

  /** Remaining NACK backoff for a type, in ms (0 = may send now). */
  protected backoffRemaining(s: NackState): number {
    if (s.nackCount < 2) return 0
    const delay = Math.min(this.#backoff.baseMs * 2 ** (s.nackCount - 2), this.#backoff.maxMs)
    return Math.max(0, s.lastNackAt + delay - Date.now())
  }

  protected schedule(s: NackState, ms: number, fn: () => void): void {
    if (s.timer !== undefined) return
    s.timer = setTimeout(() => {
      s.timer = undefined
      if (!this.#closed) fn()
    }, ms)
  }

  /** Reports withheld names the client is interested in, once per name/reason/epoch. */
  protected reportWithheld(view: TypeView, interested: (name: string) => boolean, epoch: number): void {
    if (view.withheld.size === 0 || this.opts.callbacks?.onWithheld === undefined) return
    // Reported again for each epoch (central shows "withheld at epoch N"); the set stays bounded.
    if (epoch !== this.#reportedEpoch) {
      this.#reportedWithheld.clear()
      this.#reportedEpoch = epoch
    }
    for (const [name, reason] of view.withheld) {
      if (!interested(name)) continue
      const key = `${view.typeUrl}\0${name}\0${reason}`
      if (this.#reportedWithheld.has(key)) continue
      this.#reportedWithheld.add(key)
      this.call('onWithheld', this.dp, { typeUrl: view.typeUrl, name, reason, epoch })
    }
  }

  /** Reports a refusal: logged (operators grep for it) and passed to onNack. */
  protected reportNack(ev: NackEvent): void {
    this.log.warn('xds update refused', { node: this.dp.id, typeUrl: ev.typeUrl, epoch: ev.epoch, error: ev.error.message })
    this.call('onNack', this.dp, ev)
  }

  /** Invokes a callback; its failure is logged, never propagated into the stream. */
  protected call<K extends keyof XdsCallbacks>(name: K, ...args: Parameters<NonNullable<XdsCallbacks[K]>>): void {
    const cb = this.opts.callbacks?.[name] as ((...a: unknown[]) => void) | undefined
    if (cb === undefined) return
    try {
      cb.apply(this.opts.callbacks, args)
    } catch (e) {
      this.log.warn('xds callback threw', { callback: name, err: e })
    }
  }

  /** Refuses the client (INVALID_ARGUMENT) and closes. */
  protected fail(message: string): void {
    if (this.#closed) return
    this.transport.close({ code: GrpcStatus.InvalidArgument, message })
    this.close({ reason: 'invalid-request', message })
  }

  /** Ends the stream from the server side (UNAVAILABLE: the client reconnects), e.g. to re-group its node. */
  disconnect(message: string): void {
    if (this.#closed) return
    this.transport.close({ code: GrpcStatus.Unavailable, message })
    this.close({ reason: 'server-closed', message })
  }

  /** Stops watching and reports the close once. Safe to call repeatedly. */
  close(ev: CloseEvent): void {
    if (this.#closed) return
    this.#closed = true
    this.#unwatch?.()
    this.clearTimers()
    if (this.#dp !== undefined) {
      this.log.debug('xds stream closed', { streamId: this.#streamId, node: this.#dp.id, reason: ev.reason })
      this.call('onClose', this.#dp, ev)
    }
  }
}

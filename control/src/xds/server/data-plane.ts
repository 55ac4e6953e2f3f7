/**
 * What the server knows about one connected data plane: identity, labels,
 * capabilities, and which config epoch it has applied or refused. Updated by
 * the stream; read by callbacks and by central's API (`toJSON()`).
 */
import type { JsonValue } from '@omnirelay/runtime/xds/proto/struct.ts'
import type { RpcStatus, XdsNode } from '@omnirelay/runtime/xds/proto/messages.ts'
import type { ClientCapabilities } from '../cache/capabilities.ts'

export type ConfigState = 'waiting' | 'pending' | 'ack' | 'nack'

export interface TypeStatus {
  state: ConfigState
  /** Last version sent / acknowledged for this type. */
  version: string
  epoch: number
  error?: RpcStatus
}

export interface DataPlaneSummary {
  streamId: string
  protocol: 'sotw' | 'delta'
  id: string
  cluster: string
  group: string
  labels: Record<string, JsonValue>
  userAgent: string
  clientFeatures: string[]
  connectedAt: string
  lastSeen: string
  state: ConfigState
  appliedEpoch: number | null
  refusedEpoch: number | null
  lastError: { typeUrl: string; epoch: number; code: number; message: string } | null
  types: Record<string, TypeStatus>
}

interface Pending {
  typeUrl: string
  epoch: number
  version: string
}

export class DataPlane {
  readonly streamId: string
  readonly protocol: 'sotw' | 'delta'
  readonly node: XdsNode
  readonly group: string
  readonly capabilities: ClientCapabilities
  readonly connectedAt = Date.now()
  lastSeen = Date.now()
  /** Newest epoch fully applied: everything sent up to it was ACKed and nothing is refused. */
  appliedEpoch: number | undefined
  /** Epoch of the last refused (NACKed) response. */
  refusedEpoch: number | undefined
  lastError: { typeUrl: string; epoch: number; error: RpcStatus } | undefined
  readonly types = new Map<string, TypeStatus>()
  #pending = new Map<string, Pending>()
  #nacked = new Map<string, number>()
  #evaluatedEpoch: number | undefined

  constructor(streamId: string, protocol: 'sotw' | 'delta', node: XdsNode, group: string, capabilities: ClientCapabilities) {
    this.streamId = streamId
    this.protocol = protocol
    this.node = node
    this.group = group
    this.capabilities = capabilities
  }

  get id(): string {
    return this.node.id
  }

  get labels(): Record<string, JsonValue> {
    return this.node.metadata
  }

  /** Responses sent and not yet answered. */
  get pendingCount(): number {
    return this.#pending.size
  }

  get state(): ConfigState {
    if (this.#nacked.size > 0) return 'nack'
    if (this.#pending.size > 0) return 'pending'
    return this.appliedEpoch === undefined ? 'waiting' : 'ack'
  }

  /** @internal the stream has looked at snapshot `epoch` (whether or not it sent anything). */
  evaluated(epoch: number): void {
    this.#evaluatedEpoch = epoch
    this.#settle()
  }

  /** @internal `supersede`: SotW, where a newer response replaces the unacked older ones of its type. */
  sent(typeUrl: string, nonce: string, epoch: number, version: string, supersede: boolean): void {
    if (supersede) for (const [n, p] of this.#pending) if (p.typeUrl === typeUrl) this.#pending.delete(n)
    this.#pending.set(nonce, { typeUrl, epoch, version })
    this.types.set(typeUrl, { ...this.types.get(typeUrl), state: 'pending', version, epoch })
  }

  /** @internal a response that will never be answered (superseded). */
  forget(nonce: string): void {
    this.#pending.delete(nonce)
  }

  /** @internal */
  pendingFor(nonce: string): Pending | undefined {
    return this.#pending.get(nonce)
  }

  /** @internal */
  acked(nonce: string): Pending | undefined {
    const p = this.#pending.get(nonce)
    if (p === undefined) return undefined
    this.#pending.delete(nonce)
    this.#nacked.delete(p.typeUrl)
    if (!this.#hasPendingType(p.typeUrl)) this.types.set(p.typeUrl, { state: 'ack', version: p.version, epoch: p.epoch })
    this.#settle()
    return p
  }

  /** @internal */
  nacked(nonce: string, error: RpcStatus): Pending | undefined {
    const p = this.#pending.get(nonce)
    if (p === undefined) return undefined
    this.#pending.delete(nonce)
    this.#nacked.set(p.typeUrl, p.epoch)
    this.refusedEpoch = p.epoch
    this.lastError = { typeUrl: p.typeUrl, epoch: p.epoch, error }
    this.types.set(p.typeUrl, { state: 'nack', version: p.version, epoch: p.epoch, error })
    return p
  }

  /**
   * @internal the client already has what the snapshot wants for this type
   * (e.g. a refused change was reverted), so an old refusal no longer stands.
   */
  inSync(typeUrl: string): void {
    if (this.#hasPendingType(typeUrl) || !this.#nacked.has(typeUrl)) return
    this.#nacked.delete(typeUrl)
    const t = this.types.get(typeUrl)
    if (t !== undefined) this.types.set(typeUrl, { state: 'ack', version: t.version, epoch: t.epoch })
    this.#settle()
  }

  #hasPendingType(typeUrl: string): boolean {
    for (const p of this.#pending.values()) if (p.typeUrl === typeUrl) return true
    return false
  }

  #settle(): void {
    if (this.#pending.size === 0 && this.#nacked.size === 0 && this.#evaluatedEpoch !== undefined) {
      this.appliedEpoch = this.#evaluatedEpoch
    }
  }

  toJSON(): DataPlaneSummary {
    return {
      streamId: this.streamId,
      protocol: this.protocol,
      id: this.node.id,
      cluster: this.node.cluster,
      group: this.group,
      labels: this.node.metadata,
      userAgent: `${this.node.userAgentName}/${this.node.userAgentVersion}`,
      clientFeatures: this.node.clientFeatures,
      connectedAt: new Date(this.connectedAt).toISOString(),
      lastSeen: new Date(this.lastSeen).toISOString(),
      state: this.state,
      appliedEpoch: this.appliedEpoch ?? null,
      refusedEpoch: this.refusedEpoch ?? null,
      lastError: this.lastError
        ? { typeUrl: this.lastError.typeUrl, epoch: this.lastError.epoch, code: this.lastError.error.code, message: this.lastError.error.message }
        : null,
      types: Object.fromEntries(this.types),
    }
  }
}

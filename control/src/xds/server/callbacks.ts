/**
 * Hooks a control plane uses to follow each data plane (central's "connected
 * data planes" view is built from them). All optional; a hook that throws is
 * logged and otherwise ignored, it never breaks the stream.
 */
import type { RpcStatus } from '@omnirelay/runtime/xds/proto/messages.ts'
import type { DataPlane } from './data-plane.ts'

export interface RequestEvent {
  readonly typeUrl: string
  readonly nonce: string
  /** The nonce is not the latest one sent for this type (SotW: request ignored). */
  readonly stale: boolean
  /** SotW: the names requested; delta: subscribe/unsubscribe. */
  readonly resourceNames?: readonly string[]
  readonly subscribe?: readonly string[]
  readonly unsubscribe?: readonly string[]
}

export interface ResponseEvent {
  readonly typeUrl: string
  readonly nonce: string
  readonly epoch: number
  /** SotW version_info or delta system_version_info. */
  readonly version: string
  readonly resources: readonly string[]
  readonly removed: readonly string[]
}

export interface AckEvent {
  readonly typeUrl: string
  readonly nonce: string
  readonly epoch: number
  readonly version: string
}

export interface NackEvent extends AckEvent {
  readonly error: RpcStatus
}

export interface WithheldEvent {
  readonly typeUrl: string
  readonly name: string
  readonly reason: string
  readonly epoch: number
}

export interface CloseEvent {
  /** Stable code: 'client-closed', 'server-closed', 'invalid-request', 'transport-error'. */
  readonly reason: string
  readonly message?: string
}

export interface XdsCallbacks {
  /** After the first request of a stream (when the node is known). */
  onStreamOpen?(dp: DataPlane): void
  onRequest?(dp: DataPlane, ev: RequestEvent): void
  onResponse?(dp: DataPlane, ev: ResponseEvent): void
  onAck?(dp: DataPlane, ev: AckEvent): void
  onNack?(dp: DataPlane, ev: NackEvent): void
  /** A resource the client is interested in that it cannot run (capability negotiation). */
  onWithheld?(dp: DataPlane, ev: WithheldEvent): void
  onClose?(dp: DataPlane, ev: CloseEvent): void
}

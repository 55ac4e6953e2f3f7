/** Messages between the primary and its workers (structured-clone data only). */
import type { AddressInfo } from 'node:net'
import type { RevocationSnapshot } from '../bundles/revocation-list.ts'
import type { ConfigIssue } from '../config/errors.ts'
import type { ProxyConfig } from '../config/types.ts'
import type { SeriesWire } from '../telemetry/proto.ts'

/** What every worker runs: one config at one epoch, the same in all workers. */
export interface WorkerState {
  config: ProxyConfig
  epoch: number
  /** Filter instance -> bundle version, for per-version telemetry (xDS mode). */
  versions?: Record<string, string>
}

export type ToWorker =
  | {
      type: 'start'
      state: WorkerState
      /** The revocation list to enforce (xDS mode: the primary polls the registry). */
      revocations?: RevocationSnapshot
      /** Aggregate rollout telemetry for the primary to collect (xDS mode). */
      telemetry?: boolean
      /**
       * A replacement for a worker that died: join the others on their config even when the
       * revocation list now covers some of its filters (they run as stand-ins, as in the
       * others) instead of refusing it as a first start does.
       */
      rejoin?: boolean
    }
  | { type: 'reload'; id: number; state: WorkerState }
  | { type: 'revocations'; id: number; snapshot: RevocationSnapshot }
  | { type: 'metrics'; id: number }
  | { type: 'telemetry'; id: number }
  | { type: 'close' }

/** Why a worker refused a config: enough to rebuild the error in the primary. */
export interface WorkerFailure {
  code: string
  message: string
  issues?: ConfigIssue[]
}

export type FromWorker =
  /** The worker is listening for messages (anything sent before may be lost). */
  | { type: 'hello' }
  | { type: 'ready'; addresses: Record<string, AddressInfo> }
  | ({ type: 'start-failed' } & WorkerFailure)
  | { type: 'reloaded'; id: number; ok: true; addresses: Record<string, AddressInfo> }
  | ({ type: 'reloaded'; id: number; ok: false } & WorkerFailure)
  | { type: 'revoked'; id: number }
  | { type: 'metrics'; id: number; text: string }
  /** The telemetry series aggregated since the last collection (then reset in the worker). */
  | { type: 'telemetry'; id: number; series: SeriesWire[]; droppedSeries: number }

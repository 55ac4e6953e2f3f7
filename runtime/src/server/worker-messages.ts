/** Messages between the primary and its workers (structured-clone data only). */
import type { AddressInfo } from 'node:net'
import type { ProxyConfig } from '../config/types.ts'

export type ToWorker =
  | { type: 'start'; config: ProxyConfig; epoch: number }
  | { type: 'reload'; id: number; config: ProxyConfig; epoch: number }
  | { type: 'metrics'; id: number }
  | { type: 'close' }

export type FromWorker =
  /** The worker is listening for messages (anything sent before may be lost). */
  | { type: 'hello' }
  | { type: 'ready'; addresses: Record<string, AddressInfo> }
  | { type: 'start-failed'; code: string; message: string }
  | { type: 'reloaded'; id: number; ok: boolean; code?: string; message?: string; addresses?: Record<string, AddressInfo> }
  | { type: 'metrics'; id: number; text: string }

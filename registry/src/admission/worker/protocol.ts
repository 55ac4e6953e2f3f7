/** Messages between the registry and its admission worker. */
import type { AdmissionPolicy } from '../policy.ts'
import type { Admitted } from '../pipeline.ts'

export interface WorkerInit {
  /** A policy file path, or a policy document with the directory its key files resolve against. */
  trustPolicy: { file: string } | { document: object; baseDir: string }
  policy: AdmissionPolicy
}

export interface AdmitRequest {
  id: number
  file: Uint8Array
  /** Verification time, epoch ms. */
  now: number
}

export type AdmitResponse =
  | { id: number; ok: true; admitted: Admitted }
  | { id: number; ok: false; error: { code: string; message: string; status: number; step?: string } }

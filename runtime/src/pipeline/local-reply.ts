/**
 * The host's own answers (no route, upstream down, filter failed, body too large): one
 * small JSON shape everywhere, `{"error": <code>, "status": <n>, ...safe extras}`, never
 * a stack or an internal message.
 */
import type { Bytes } from './filter.ts'

/** A local response, from a filter (`sendLocalReply`) or from the host itself. */
export interface LocalReply {
  status: number
  body: Uint8Array
  /** Lower-case `[name, value]` pairs. */
  headers: [string, string][]
  /** Why, for the access log (`filter:authz`, `no_route`, `upstream_timeout`...). */
  details: string | undefined
}

const encoder = new TextEncoder()
const EMPTY = new Uint8Array(0)

export function toBytes(b: Bytes | undefined): Uint8Array {
  if (b === undefined) return EMPTY
  return typeof b === 'string' ? encoder.encode(b) : b
}

const JSON_HEADERS: readonly [string, string][] = [['content-type', 'application/json']]

/**
 * A JSON error reply with a stable code.
 * @example
 * hostReply(503, 'no_healthy_upstream') // body {"error":"no_healthy_upstream","status":503}
 */
export function hostReply(status: number, code: string, extra?: Record<string, string>): LocalReply {
  const body = encoder.encode(JSON.stringify({ error: code, status, ...extra }) + '\n')
  return { status, body, headers: JSON_HEADERS.slice() as [string, string][], details: code }
}

/** A valid status for a local reply: filters may send 200-599; anything else becomes 500. */
export function clampStatus(status: number): number {
  return Number.isInteger(status) && status >= 200 && status <= 599 ? status : 500
}

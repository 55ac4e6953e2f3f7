/**
 * The running config as the admin `/config` endpoint shows it: secrets replaced, so the
 * page is safe to share. TLS private keys are paths in config, but filter `config` blobs
 * may hold tokens: any key that looks secret is redacted wherever it appears.
 */
import type { ProxyConfig } from './types.ts'

const SECRET_KEY = /^(key|password|passwd|secret|token|apikey|api_key|privatekey|private_key|authorization|clientsecret|client_secret)$/i

export const REDACTED = '[redacted]'

export function redactConfig(cfg: ProxyConfig): unknown {
  return redact(cfg)
}

function redact(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redact)
  if (typeof v !== 'object' || v === null) return v
  const out: Record<string, unknown> = {}
  for (const [k, val] of Object.entries(v)) {
    out[k] = SECRET_KEY.test(k) && val !== undefined && val !== null && typeof val !== 'object' ? REDACTED : redact(val)
  }
  return out
}

/**
 * Sample requests for the smoke run. A bundle may declare its own as an artifact at
 * `smoke/samples.json` (signed like every artifact); otherwise a default corpus runs.
 *
 * ```json
 * { "config": { "any": "json" },
 *   "requests": [ { "method": "GET", "path": "/", "headers": [["x-a", "1"]], "body": "…",
 *                   "response": { "status": 200, "headers": [["content-type", "text/plain"]], "body": "ok" } } ] }
 * ```
 */
import { refusal, AdmissionStep, RegistryErrorCode } from '../errors.ts'

export { SAMPLES_ARTIFACT } from '@omnirelay/runtime/bundles/build.ts'
import { SAMPLES_ARTIFACT } from '@omnirelay/runtime/bundles/build.ts'

export interface SampleRequest {
  method: string
  path: string
  authority: string
  headers: [string, string][]
  body?: string
  response: { status: number; headers: [string, string][]; body?: string }
}

export interface Samples {
  /** Handed to the filter as its plugin configuration (JSON). */
  config?: unknown
  requests: SampleRequest[]
}

/** Plain traffic every header/body filter should survive. */
export const DEFAULT_CORPUS: SampleRequest[] = [
  { method: 'GET', path: '/', authority: 'example.test', headers: [['user-agent', 'meshkit-smoke/1'], ['accept', '*/*']], response: { status: 200, headers: [['content-type', 'text/plain']], body: 'ok' } },
  {
    method: 'POST',
    path: '/api/items?id=42&x=%20y',
    authority: 'api.example.test',
    headers: [['content-type', 'application/json'], ['authorization', 'Bearer smoke'], ['x-forwarded-for', '10.0.0.1']],
    body: '{"name":"smoke","n":1}',
    response: { status: 201, headers: [['content-type', 'application/json'], ['set-cookie', 'a=b']], body: '{"ok":true}' },
  },
  { method: 'GET', path: '/static/app.js', authority: 'example.test', headers: [['if-none-match', '"abc"'], ['accept-encoding', 'gzip']], response: { status: 304, headers: [] } },
  { method: 'DELETE', path: '/admin/../etc/passwd', authority: 'example.test', headers: [['x-very-long', 'x'.repeat(4096)]], response: { status: 404, headers: [['content-length', '0']] } },
]

const bad = (why: string) => refusal(AdmissionStep.Smoke, RegistryErrorCode.SamplesInvalid, `${SAMPLES_ARTIFACT}: ${why}`)

function pairs(v: unknown, where: string): [string, string][] {
  if (v === undefined) return []
  if (!Array.isArray(v) || v.some((p) => !Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string' || typeof p[1] !== 'string')) {
    throw bad(`${where} must be a list of [name, value] string pairs`)
  }
  return (v as [string, string][]).map(([k, val]) => [k.toLowerCase(), val])
}

/** Parses a bundle's samples artifact; refuses anything malformed (step `smoke`). */
export function parseSamples(bytes: Uint8Array, maxSamples: number): Samples {
  let doc: { config?: unknown; requests?: unknown }
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as typeof doc
  } catch {
    throw bad('not UTF-8 JSON')
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray(doc.requests) || doc.requests.length === 0) throw bad('needs a non-empty "requests" list')
  if (doc.requests.length > maxSamples) throw bad(`more than ${maxSamples} requests`)
  const requests = doc.requests.map((r: unknown, i: number): SampleRequest => {
    const q = r as Record<string, unknown>
    if (typeof q !== 'object' || q === null) throw bad(`requests[${i}] is not an object`)
    const resp = (q.response ?? {}) as Record<string, unknown>
    const status = resp.status ?? 200
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) throw bad(`requests[${i}].response.status`)
    for (const k of ['method', 'path', 'authority', 'body'] as const) {
      if (q[k] !== undefined && typeof q[k] !== 'string') throw bad(`requests[${i}].${k} must be a string`)
    }
    if (resp.body !== undefined && typeof resp.body !== 'string') throw bad(`requests[${i}].response.body must be a string`)
    return {
      method: (q.method as string | undefined) ?? 'GET',
      path: (q.path as string | undefined) ?? '/',
      authority: (q.authority as string | undefined) ?? 'example.test',
      headers: pairs(q.headers, `requests[${i}].headers`),
      body: q.body as string | undefined,
      response: { status, headers: pairs(resp.headers, `requests[${i}].response.headers`), body: resp.body as string | undefined },
    }
  })
  return doc.config === undefined ? { requests } : { config: doc.config, requests }
}

/**
 * Client side of the registry API for tools: `publishBundle` is what `omnirelay bundle publish`
 * calls; the rest serve the `meshkit registry` CLI.
 */
import { readFile } from 'node:fs/promises'

/** A refusal or failure the registry answered with (or a transport failure: code `unreachable`). */
export class RegistryClientError extends Error {
  readonly code: string
  readonly status: number
  readonly step: string | undefined
  constructor(code: string, message: string, status: number, step?: string) {
    super(message)
    this.name = 'RegistryClientError'
    this.code = code
    this.status = status
    this.step = step
  }
}

export interface PublishOutcome {
  result: 'admitted' | 'exists'
  bundle: { name: string; version: string; digest: string; instrumentedDigest: string | null; signer: { keyId: string; publisher: string } }
}

/**
 * Calls the registry API. Resolves with the parsed JSON body; rejects with RegistryClientError.
 *
 * @example
 * const list = await registryRequest('http://127.0.0.1:7070', 'GET', '/v1/bundles')
 */
export async function registryRequest<T = unknown>(url: string, method: string, path: string, opts: { token?: string; body?: Uint8Array | object } = {}): Promise<T> {
  const headers: Record<string, string> = {}
  if (opts.token) headers.authorization = `Bearer ${opts.token}`
  let body: Uint8Array | string | undefined
  if (opts.body instanceof Uint8Array) {
    body = opts.body
    headers['content-type'] = 'application/vnd.omnirelay.bundle.v1'
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body)
    headers['content-type'] = 'application/json'
  }
  let res: Response
  try {
    res = await fetch(new URL(path, url), { method, headers, body })
  } catch (e) {
    throw new RegistryClientError('unreachable', `cannot reach the registry at ${url}: ${(e as Error).message}`, 0)
  }
  const text = await res.text()
  let json: unknown
  try {
    json = text === '' ? {} : JSON.parse(text)
  } catch {
    throw new RegistryClientError('bad_response', `registry answered ${res.status} with non-JSON`, res.status)
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string; step?: string } }).error ?? {}
    throw new RegistryClientError(err.code ?? `http_${res.status}`, err.message ?? `HTTP ${res.status}`, res.status, err.step)
  }
  return json as T
}

/**
 * Publishes a bundle file (path or bytes). Resolves when admitted (`admitted`) or when the same
 * file was already there (`exists`); rejects with RegistryClientError naming the refused step.
 *
 * @example
 * try {
 *   const r = await publishBundle('http://127.0.0.1:7070', process.env.MESHKIT_TOKEN!, 'dist/waf.orb')
 *   console.log(r.result, r.bundle.digest)
 * } catch (e) { if (e instanceof RegistryClientError) console.error(e.step, e.code, e.message) }
 */
export async function publishBundle(url: string, token: string, file: string | Uint8Array): Promise<PublishOutcome> {
  const bytes = typeof file === 'string' ? new Uint8Array(await readFile(file)) : file
  return registryRequest<PublishOutcome>(url, 'POST', '/v1/bundles', { token, body: bytes })
}

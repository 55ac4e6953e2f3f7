/**
 * What data planes (and the MeshKit agent) use to follow the registry's revocation list:
 * a conditional GET keyed by the list's ETag, so an unchanged list costs a 304.
 */
import { RegistryClientError } from './publish.ts'

export interface RevocationList {
  serial: number
  digests: string[]
  signers: string[]
}

export type RevocationPoll = { changed: false; etag: string } | { changed: true; etag: string; list: RevocationList }

/**
 * Fetches the revocation list unless it is unchanged since `etag`.
 *
 * @example
 * let etag: string | undefined
 * const r = await pollRevocations(url, { etag })
 * if (r.changed) { refuse(r.list.digests, r.list.signers) }
 * etag = r.etag
 */
export async function pollRevocations(url: string, opts: { token?: string; etag?: string } = {}): Promise<RevocationPoll> {
  const headers: Record<string, string> = {}
  if (opts.token) headers.authorization = `Bearer ${opts.token}`
  if (opts.etag) headers['if-none-match'] = opts.etag
  let res: Response
  try {
    res = await fetch(new URL('/v1/revocations', url), { headers })
  } catch (e) {
    throw new RegistryClientError('unreachable', `cannot reach the registry at ${url}: ${(e as Error).message}`, 0)
  }
  const etag = res.headers.get('etag') ?? ''
  if (res.status === 304) return { changed: false, etag: opts.etag ?? etag }
  const body = (await res.json().catch(() => ({}))) as Partial<RevocationList> & { error?: { code?: string; message?: string } }
  if (!res.ok) throw new RegistryClientError(body.error?.code ?? `http_${res.status}`, body.error?.message ?? `HTTP ${res.status}`, res.status)
  if (typeof body.serial !== 'number' || !Array.isArray(body.digests) || !Array.isArray(body.signers)) {
    throw new RegistryClientError('bad_response', 'revocation list is malformed', res.status)
  }
  return { changed: true, etag, list: { serial: body.serial, digests: body.digests, signers: body.signers } }
}

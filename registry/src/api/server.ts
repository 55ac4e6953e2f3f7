/**
 * The registry's HTTP/JSON API on node:http. Paths are versioned (`/v1/...`); every error is
 * `{ "error": { "code", "message", "step"? } }` with a stable code. Blobs are immutable, so
 * downloads carry the digest as a strong ETag and `Cache-Control: immutable`.
 *
 *   GET  /v1/health
 *   POST /v1/bundles                              publish (body: the bundle file)
 *   GET  /v1/bundles?q=&capability=&kind=         names with their latest live version
 *   GET  /v1/search?q=&capability=&kind=          same as above
 *   GET  /v1/bundles/{name}                       versions of a name
 *   GET  /v1/bundles/{name}/{version}             one version (manifest, digests, signer, state)
 *   GET  /v1/bundles/{name}/{version}/manifest    the manifest
 *   POST /v1/bundles/{name}/{version}/yank        {"reason"}
 *   GET  /v1/blobs/{digest}                       bundle file or instrumented module
 *   GET  /v1/revocations                          what data planes must refuse
 *   POST /v1/revocations                          {"digest"|"signer", "reason"} (admin)
 *   GET  /v1/audit?after=&limit=                  (admin)
 *   GET  /v1/audit/verify                         (admin)
 *
 * A scoped name (`@acme/waf`) may be sent as two path segments or percent-encoded as one.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'
import { authenticate, authorize, type Principal } from '../auth/tokens.ts'
import { BundleErrorCode } from '@omnirelay/runtime/bundles/errors.ts'
import { AdmissionStep, RegistryError, RegistryErrorCode } from '../errors.ts'
import type { Registry } from '../registry.ts'

const JSON_TYPE = 'application/json; charset=utf-8'
const MAX_JSON_BODY = 64 * 1024

class BodyTooLarge extends RegistryError {
  constructor(limit: number) {
    super(BundleErrorCode.TooLarge, `request body exceeds ${limit} bytes`, { status: 413, step: AdmissionStep.Size })
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}

/** Reads a request body up to `limit` bytes; past it, stops reading and refuses. */
async function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) throw new BodyTooLarge(limit)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw new BodyTooLarge(limit)
    chunks.push(chunk)
  }
  return new Uint8Array(Buffer.concat(chunks, size))
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const body = await readBody(req, MAX_JSON_BODY)
  if (body.length === 0) return {}
  try {
    const v = JSON.parse(new TextDecoder().decode(body)) as unknown
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object')
    return v as Record<string, unknown>
  } catch {
    throw new RegistryError(RegistryErrorCode.BadRequest, 'body must be a JSON object')
  }
}

function str(v: unknown, field: string, max = 1000): string {
  if (v === undefined) return ''
  if (typeof v !== 'string' || v.length > max) throw new RegistryError(RegistryErrorCode.BadRequest, `"${field}" must be a string of at most ${max} characters`)
  return v
}

/** Splits `/v1/bundles/<rest>` into name, version, action; scoped names take two segments. */
function parseBundlePath(segments: string[]): { name: string; version?: string; action?: string } | undefined {
  let i = 0
  let name = segments[i++]
  if (name === undefined || name === '') return undefined
  if (name.startsWith('@') && !name.includes('/')) {
    const rest = segments[i++]
    if (rest === undefined) return undefined
    name = `${name}/${rest}`
  }
  const version = segments[i++]
  const action = segments[i++]
  if (i < segments.length) return undefined
  return { name, version, action }
}

export interface ApiOptions {
  /** Called for unexpected (non-RegistryError) failures; default: console.error. */
  onError?: (e: unknown) => void
}

/**
 * The request handler for a registry (mount it on your own server, or use `startRegistry`).
 *
 * @example
 * const server = http.createServer(createHandler(registry)).listen(0, '127.0.0.1')
 */
export function createHandler(registry: Registry, opts: ApiOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const onError = opts.onError ?? ((e: unknown) => console.error('registry: unexpected error', e))
  return (req, res) => {
    handle(registry, req, res).catch((e: unknown) => {
      if (!(e instanceof RegistryError)) onError(e)
      const err = e instanceof RegistryError ? e : new RegistryError(RegistryErrorCode.Internal, 'internal error', { status: 500 })
      if (res.headersSent) {
        res.destroy()
        return
      }
      // Stop reading an oversized upload, but let the client see the answer.
      if (e instanceof BodyTooLarge) res.setHeader('connection', 'close')
      send(res, err.status, err.toJSON())
    })
  }
}

async function handle(registry: Registry, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://registry.invalid')
  let segments: string[]
  try {
    segments = url.pathname.split('/').slice(1).map(decodeURIComponent)
  } catch {
    throw new RegistryError(RegistryErrorCode.BadRequest, 'bad percent-encoding in path')
  }
  if (segments[0] !== 'v1') throw new RegistryError(RegistryErrorCode.NotFound, `no route ${url.pathname}`, { status: 404 })
  const method = req.method ?? 'GET'
  const who: Principal = authenticate(registry.store, req.headers.authorization)
  const read = (): void => {
    if (registry.readAccess === 'token') authorize(who, 'read')
  }
  const route = segments[1]
  const rest = segments.slice(2)

  if (route === 'health' && rest.length === 0 && method === 'GET') return send(res, 200, registry.health())

  if (route === 'bundles' && rest.length === 0) {
    if (method === 'POST') {
      let file: Uint8Array
      try {
        file = await readBody(req, registry.policy.maxBundleBytes)
      } catch (e) {
        if (e instanceof RegistryError) registry.recordRefusedUpload(who, e)
        throw e
      }
      const r = await registry.publish(file, who)
      return send(res, r.result === 'admitted' ? 201 : 200, r)
    }
    if (method === 'GET') {
      read()
      return send(res, 200, { bundles: registry.list(filterOf(url)) })
    }
  }
  if (route === 'search' && rest.length === 0 && method === 'GET') {
    read()
    return send(res, 200, { bundles: registry.list(filterOf(url)) })
  }
  if (route === 'bundles' && rest.length > 0) {
    const p = parseBundlePath(rest)
    if (!p) throw new RegistryError(RegistryErrorCode.NotFound, `no route ${url.pathname}`, { status: 404 })
    if (p.version === undefined && method === 'GET') {
      read()
      const versions = registry.versions(p.name)
      if (versions.length === 0) throw new RegistryError(RegistryErrorCode.NotFound, `${p.name} is not in the registry`, { status: 404 })
      return send(res, 200, { name: p.name, versions })
    }
    if (p.version !== undefined && p.action === undefined && method === 'GET') {
      read()
      return send(res, 200, registry.get(p.name, p.version))
    }
    if (p.version !== undefined && p.action === 'manifest' && method === 'GET') {
      read()
      // The exact signed bytes, so a client can check them against the manifest digest.
      const m = await registry.manifestBytes(p.name, p.version)
      res.writeHead(200, { 'content-type': JSON_TYPE, 'content-length': m.bytes.length, 'x-manifest-digest': m.digest, etag: `"${m.digest}"`, 'cache-control': 'public, max-age=31536000, immutable' })
      res.end(m.bytes)
      return
    }
    if (p.version !== undefined && p.action === 'yank' && method === 'POST') {
      const body = await readJson(req)
      return send(res, 200, registry.yank(p.name, p.version, str(body.reason, 'reason'), who))
    }
  }
  if (route === 'blobs' && rest.length === 1 && (method === 'GET' || method === 'HEAD')) {
    read()
    const blob = await registry.blob(rest[0] as string)
    const etag = `"${blob.digest}"`
    const headers = { etag, 'cache-control': 'public, max-age=31536000, immutable', 'content-type': blob.mediaType, 'x-content-digest': blob.digest }
    if (req.headers['if-none-match']?.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)) {
      res.writeHead(304, headers)
      res.end()
      return
    }
    res.writeHead(200, { ...headers, 'content-length': blob.size })
    if (method === 'HEAD') {
      res.end()
      return
    }
    if (blob.bytes) {
      res.end(blob.bytes)
      return
    }
    try {
      await pipeline(blob.stream(), res)
    } catch (e) {
      // The client went away mid-download: nothing to answer, nothing to report.
      if ((e as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE') return
      throw e
    }
    return
  }
  if (route === 'revocations' && rest.length === 0) {
    if (method === 'GET') {
      read()
      // Data planes poll this: the serial only grows, so it makes a cheap validator.
      const list = registry.revocations()
      const etag = `"revocations-${list.serial}"`
      res.setHeader('etag', etag)
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304)
        res.end()
        return
      }
      return send(res, 200, list)
    }
    if (method === 'POST') {
      const body = await readJson(req)
      const reason = str(body.reason, 'reason')
      if ((body.digest === undefined) === (body.signer === undefined)) throw new RegistryError(RegistryErrorCode.BadRequest, 'give exactly one of "digest", "signer"')
      const target = body.digest !== undefined ? { digest: str(body.digest, 'digest', 256) } : { signer: str(body.signer, 'signer', 256) }
      return send(res, 201, registry.revoke(target, reason, who))
    }
  }
  if (route === 'audit' && method === 'GET') {
    if (rest.length === 0) {
      const after = Number(url.searchParams.get('after') ?? 0)
      const limit = Number(url.searchParams.get('limit') ?? 100)
      return send(res, 200, { entries: registry.auditEntries(Number.isFinite(after) ? after : 0, Number.isFinite(limit) ? limit : 100, who), head: registry.audit.head() })
    }
    if (rest.length === 1 && rest[0] === 'verify') return send(res, 200, registry.verifyAudit(who))
  }
  throw new RegistryError(RegistryErrorCode.NotFound, `no route ${method} ${url.pathname}`, { status: 404 })
}

function filterOf(url: URL): { query?: string; capability?: string; kind?: string } {
  const f: { query?: string; capability?: string; kind?: string } = {}
  const q = url.searchParams.get('q')
  const c = url.searchParams.get('capability')
  const k = url.searchParams.get('kind')
  if (q) f.query = q.slice(0, 214)
  if (c) f.capability = c.slice(0, 64)
  if (k) f.kind = k.slice(0, 16)
  return f
}

export interface RunningRegistry {
  /** `http://host:port` */
  url: string
  registry: Registry
  server: Server
  close(): Promise<void>
}

/** Serves `registry` on host:port (port 0 picks a free one). */
export function serve(registry: Registry, port: number, host: string, opts: ApiOptions = {}): Promise<RunningRegistry> {
  const server = createServer(createHandler(registry, opts))
  // Admission of a large bundle can take seconds; keep-alive sockets should not linger forever.
  server.keepAliveTimeout = 5_000
  // A slow upload must not hold a socket for the default five minutes.
  server.requestTimeout = 120_000
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      const addr = server.address()
      const p = typeof addr === 'object' && addr ? addr.port : port
      const h = host.includes(':') ? `[${host}]` : host
      resolve({
        url: `http://${h}:${p}`,
        registry,
        server,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => {
              registry.close()
              done()
            })
            server.closeAllConnections()
          }),
      })
    })
  })
}

/**
 * Filters' outbound callouts (proxy-wasm `proxy_http_call`) through the configured clusters:
 * the same balancing, health, breakers and timeouts as proxied traffic, response buffered.
 */
import type { HostServices, HttpCallRequest, HttpCallResponse } from '../hosts/host-services.ts'
import { UpstreamError, UpstreamErrorCode, type ClusterManager, type RoutePolicy } from './types.ts'

/** Largest callout response kept in memory; a larger one fails the call. */
export const MAX_CALLOUT_BODY = 4 * 1024 * 1024

/**
 * @example
 * const httpCall = createHttpCaller(clusters)
 * const res = await httpCall({ cluster: 'auth', headers: [[':method', 'GET'], [':path', '/check']], timeoutMs: 500 })
 * res.headers // [[':status', '200'], ['content-type', 'application/json'], ...]
 */
export function createHttpCaller(clusters: ClusterManager): HostServices['httpCall'] {
  return async function httpCall(req: HttpCallRequest): Promise<HttpCallResponse> {
    const cluster = clusters.get(req.cluster)
    if (cluster === undefined) {
      throw new UpstreamError(UpstreamErrorCode.UnknownCluster, `unknown cluster "${req.cluster}"`)
    }
    let method = 'GET'
    let path = '/'
    let authority = req.cluster
    const headers: string[] = []
    for (const [rawName, value] of req.headers) {
      const name = rawName.toLowerCase()
      if (name === ':method') method = value
      else if (name === ':path') path = value
      else if (name === ':authority' || name === 'host') authority = value
      else if (name.charCodeAt(0) !== 58 /* ':' */ && !HOP_BY_HOP.has(name)) headers.push(name, value)
    }
    headers.push('host', authority)
    const policy: RoutePolicy = { requestTimeoutMs: req.timeoutMs > 0 ? req.timeoutMs : 0, idleTimeoutMs: 0 }
    const controller = new AbortController()
    const res = await cluster.request({ method, path, headers, body: req.body ?? null, policy, signal: controller.signal })
    const chunks: Buffer[] = []
    let size = 0
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length
        if (size > MAX_CALLOUT_BODY) {
          controller.abort()
          throw new UpstreamError(UpstreamErrorCode.Reset, `callout response larger than ${MAX_CALLOUT_BODY} bytes`)
        }
        chunks.push(chunk)
      }
    } catch (err) {
      if (err instanceof UpstreamError) throw err
      throw new UpstreamError(UpstreamErrorCode.Reset, 'callout response failed mid-body', { cause: err })
    }
    const out: [string, string][] = [[':status', String(res.statusCode)]]
    const h = res.headers
    for (let i = 0; i < h.length; i += 2) out.push([h[i]!, h[i + 1]!])
    const t = res.trailers()
    const trailers: [string, string][] = []
    for (let i = 0; i < t.length; i += 2) trailers.push([t[i]!, t[i + 1]!])
    return { headers: out, body: new Uint8Array(Buffer.concat(chunks, size)), trailers }
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'])

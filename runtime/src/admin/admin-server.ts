/**
 * The admin server: `/ready`, `/live`, `/metrics` (Prometheus text), `/config` (running
 * config and epoch, secrets redacted). Bind it to localhost: it is for operators.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface AdminSource {
  /** Serving and not draining. */
  ready(): boolean
  metrics(): Promise<string>
  /** The running config (already redacted) and its epoch. */
  config(): { epoch: number; config: unknown }
  /** Optional facts appended to /ready as `key: value` lines (e.g. where the config came from). */
  readyDetails?(): Record<string, string | number | boolean>
}

export class AdminServer {
  readonly #server: http.Server

  constructor(source: AdminSource) {
    this.#server = http.createServer({ headersTimeout: 5_000, requestTimeout: 10_000 }, (req, res) => {
      const path = (req.url ?? '/').split('?')[0]
      const send = (status: number, type: string, body: string) => {
        res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) })
        res.end(body)
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'application/json', '{"error":"method_not_allowed","status":405}\n')
      switch (path) {
        case '/live':
          return send(200, 'text/plain', 'live\n')
        case '/ready':
        {
          const details = source.readyDetails ? Object.entries(source.readyDetails()).map(([k, v]) => `${k}: ${String(v)}\n`).join('') : ''
          return source.ready() ? send(200, 'text/plain', `ready\n${details}`) : send(503, 'text/plain', `not ready\n${details}`)
        }
        case '/metrics':
          source.metrics().then(
            (text) => send(200, 'text/plain; version=0.0.4; charset=utf-8', text),
            () => send(500, 'application/json', '{"error":"metrics_unavailable","status":500}\n'),
          )
          return
        case '/config':
          return send(200, 'application/json', JSON.stringify(source.config(), null, 2) + '\n')
        default:
          return send(404, 'application/json', '{"error":"not_found","status":404}\n')
      }
    })
  }

  listen(port: number, address: string): Promise<AddressInfo> {
    return new Promise((ok, fail) => {
      this.#server.once('error', fail)
      this.#server.listen(port, address, () => {
        this.#server.off('error', fail)
        ok(this.#server.address() as AddressInfo)
      })
    })
  }

  address(): AddressInfo {
    return this.#server.address() as AddressInfo
  }

  close(): Promise<void> {
    return new Promise((ok) => {
      this.#server.close(() => ok())
      this.#server.closeAllConnections()
    })
  }
}

/** Real upstream servers for integration tests, on 127.0.0.1 port 0. */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Upstream {
  port: number
  server: http.Server
  /** Requests seen, in order. */
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders; rawHeaders: string[]; body: string }[]
  close(): Promise<void>
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void

/** Echoes method, url, headers and body as JSON unless a handler is given. */
export async function startUpstream(handler?: Handler): Promise<Upstream> {
  const seen: Upstream['seen'] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body })
      if (handler) return handler(req, res, body)
      const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body })
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes', connection: 'keep-alive', 'keep-alive': 'timeout=99' })
      res.end(out)
    })
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  return {
    port: (server.address() as AddressInfo).port,
    server,
    seen,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections()
        server.close(() => ok())
      }),
  }
}

export interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** One HTTP/1.1 request on a fresh connection (no keep-alive pooling between tests). */
export function request(port: number, opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((ok, fail) => {
    const req = http.request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => ok({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }))
      res.on('error', fail)
    })
    req.on('error', fail)
    req.end(opts.body)
  })
}

export function json(r: Reply): any {
  return JSON.parse(r.body)
}

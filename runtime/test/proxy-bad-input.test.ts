import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFilterProxy, type FilterProxy } from './helpers/filter-proxy.ts'
import { json, request } from './helpers/servers.ts'

/** Sends raw bytes, returns everything the server sent until it closed (or `ms` passed). */
function raw(port: number, data: string | string[], ms = 3000, gapMs = 0): Promise<{ text: string; closed: boolean; elapsed: number }> {
  return new Promise((ok) => {
    const start = Date.now()
    const sock = net.connect(port, '127.0.0.1')
    let text = ''
    sock.on('data', (d) => (text += d.toString()))
    sock.on('error', () => {})
    const parts = Array.isArray(data) ? data : [data]
    let i = 0
    const next = () => {
      if (i < parts.length && !sock.destroyed) {
        sock.write(parts[i++]!)
        if (gapMs) setTimeout(next, gapMs)
        else next()
      }
    }
    sock.on('connect', next)
    const timer = setTimeout(() => {
      sock.destroy()
      ok({ text, closed: false, elapsed: Date.now() - start })
    }, ms)
    sock.on('close', () => {
      clearTimeout(timer)
      ok({ text, closed: true, elapsed: Date.now() - start })
    })
  })
}

const BUFFER_FILTER = `
export function onRequestBody(req, ctx) { return ctx.endOfStream ? 0 : 1 }
`

describe('bad input', () => {
  let fx: FilterProxy
  let port: number
  let adminPort: number
  const upstreamClosed: string[] = []

  beforeAll(async () => {
    fx = await startFilterProxy({
      prefix: 'bad-',
      files: { 'buffer.js': BUFFER_FILTER },
      upstream: (req, res) => {
        req.socket.once('close', () => upstreamClosed.push(req.url!))
        if (req.url === '/reset') {
          res.writeHead(200, { 'content-length': '100000' })
          res.write('x'.repeat(1000))
          setTimeout(() => req.socket.destroy(), 20)
        } else if (req.url === '/never') {
          // never answers
        } else if (req.url === '/slow') setTimeout(() => res.end('late'), 1000)
        else res.end('fine')
      },
      config: (upPort) => ({
        allowUnsigned: true,
        accessLog: 'off',
        listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
        admin: { address: '127.0.0.1', port: 0 },
        limits: { maxHeaderBytes: 4096, maxBodyBytes: 1000, headersTimeoutMs: 300, requestTimeoutMs: 2000 },
        clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upPort}`] }],
        filters: [{ name: 'buffer', kind: 'quickjs', module: 'buffer.js', capabilities: ['headers:read', 'body:read'] }],
        routes: [
          { name: 'buffered', match: { prefix: '/buffered' }, cluster: 'app', filters: ['buffer'] },
          { name: 'never', match: { prefix: '/never' }, cluster: 'app', policy: { requestTimeoutMs: 300 } },
          { name: 'app', match: { prefix: '/' }, cluster: 'app' },
        ],
      }),
    })
    port = fx.port
    adminPort = fx.proxy.adminAddress()!.port
  })
  afterAll(() => fx?.close())

  it('answers malformed HTTP with a JSON 400 and closes', async () => {
    const r = await raw(port, 'GARBAGE / NOPE\r\n\r\n')
    expect(r.text).toMatch(/^HTTP\/1\.1 400/)
    expect(r.text).toContain('"error":"bad_request"')
    expect(r.closed).toBe(true)
  })

  it('answers oversized headers with 431', async () => {
    const r = await raw(port, `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(8000)}\r\n\r\n`)
    expect(r.text).toMatch(/^HTTP\/1\.1 431/)
    expect(r.closed).toBe(true)
  })

  it('cuts off a slowloris client after headersTimeout', async () => {
    const parts = ['GET / HTTP/1.1\r\n', 'host: x\r\n', ...Array.from({ length: 40 }, (_, i) => `x-slow-${i}: 1\r\n`)]
    const r = await raw(port, parts, 5000, 100)
    expect(r.closed).toBe(true)
    expect(r.elapsed).toBeLessThan(3000)
    expect(r.text).toMatch(/^HTTP\/1\.1 408/)
  })

  it('answers a body over the buffering limit with 413', async () => {
    const r = await request(port, { method: 'POST', path: '/buffered', body: 'b'.repeat(5000) })
    expect(r.status).toBe(413)
    expect(json(r).error).toBe('body_too_large')
    const small = await request(port, { method: 'POST', path: '/buffered', body: 'b'.repeat(500) })
    expect([small.status, small.body]).toEqual([200, 'fine'])
  })

  it('resets the downstream when the upstream resets mid-body, and keeps serving', async () => {
    const outcome = await new Promise<string>((ok) => {
      http.get({ host: '127.0.0.1', port, path: '/reset', agent: false }, (res) => {
        res.on('data', () => {})
        res.on('end', () => ok('end'))
        res.on('aborted', () => ok('aborted'))
        res.on('error', () => ok('error'))
      }).on('error', () => ok('error'))
    })
    expect(outcome).not.toBe('end')
    expect((await request(port, { path: '/ok' })).body).toBe('fine')
  })

  it('answers 504 when the upstream never answers, and frees the upstream request', async () => {
    const r = await request(port, { path: '/never' })
    expect(r.status).toBe(504)
    expect(json(r)).toEqual({ error: 'upstream_timeout', status: 504 })
  })

  it('aborts the upstream request when the client goes away', async () => {
    const req = http.get({ host: '127.0.0.1', port, path: '/slow', agent: false })
    req.on('error', () => {})
    await new Promise((r) => setTimeout(r, 200))
    req.destroy()
    const end = Date.now() + 2000
    while (!upstreamClosed.includes('/slow') && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    expect(upstreamClosed).toContain('/slow')
  })

  it('leaks no requests or sockets', async () => {
    await new Promise((r) => setTimeout(r, 300))
    const m = (await request(adminPort, { path: '/metrics' })).body
    expect(m).toContain('omnirelay_requests_active 0')
    // Only the admin request's own connection... which is on the admin server, not counted here.
    expect(m).toContain('omnirelay_downstream_connections_active 0')
    expect(m).toMatch(/omnirelay_upstream_requests_active\{cluster="app"\} 0/)
    expect(m).toMatch(/omnirelay_downstream_protocol_errors_total\{listener="main",code="bad_request"\} [1-9]/)
  })
})

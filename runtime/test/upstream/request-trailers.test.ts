/**
 * Request trailers through the real proxy (issue #2): HTTP/1.1 chunked trailers and HTTP/2
 * trailing HEADERS reach node:http / node:http2 upstreams, RequestTrailers filters (native and
 * QuickJS) can change them, forbidden fields stay behind, and requests that cannot carry
 * trailers keep the undici path.
 */
import http from 'node:http'
import http2 from 'node:http2'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type ProxyHandle } from '../../src/index.ts'
import { silentLogger } from '../../src/observability/logger.ts'

interface Seen {
  url: string
  headers: Record<string, unknown>
  trailers: string[]
  body: string
}

const FILES = {
  // Native: changes the announced trailer and adds one.
  'nat.mjs': `export function onRequestTrailers(req) {
    req.trailers.set('x-checksum', 'native:' + req.trailers.get('x-checksum'))
    req.trailers.add('x-added', 'native')
    // Forbidden in trailers: must be dropped (the node upstream would refuse the request with it).
    req.trailers.add('content-length', '1')
    req.trailers.add(':path', '/evil')
  }`,
  // QuickJS with a body hook too, so the body goes through the filtered feed before the trailers.
  'qjs.js': `export function onRequestBody(req, ctx) { return 0 }
  export function onRequestTrailers(req) {
    req.trailers.set('x-checksum', 'qjs:' + req.trailers.get('x-checksum'))
    req.trailers.add('x-added', 'qjs')
    return 0
  }`,
  // Holds the trailers phase (async work, as a callout would) before changing them.
  'late.mjs': `export async function onRequestTrailers(req) {
    await new Promise((r) => setTimeout(r, 30))
    req.trailers.set('x-late', 'after-pause')
  }`,
  // Filters the request headers only: trailers must pass through untouched.
  'hdr.mjs': `export function onRequestHeaders(req) { req.headers.set('x-hdr', '1') }`,
}

describe('request trailers through the proxy', () => {
  let dir: string
  let h1: http.Server
  let h2: http2.Http2Server
  let proxy: ProxyHandle
  const seen: Seen[] = []

  function record(url: string, headers: Record<string, unknown>, raw: string[], body: string): string {
    const s = { url, headers, trailers: raw.map((x, i) => (i % 2 ? x : x.toLowerCase())), body }
    seen.push(s)
    return JSON.stringify(s)
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'req-trailers-'))
    for (const [f, src] of Object.entries(FILES)) await writeFile(join(dir, f), src)
    h1 = http.createServer((req, res) => {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (d: string) => (body += d))
      req.on('end', () => res.end(record(req.url!, req.headers, req.rawTrailers, body)))
    })
    h2 = http2.createServer((req, res) => {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (d: string) => (body += d))
      req.on('end', () => {
        res.addTrailers({ 'x-resp-trailer': 'r' })
        res.end(record(req.url, req.headers, req.rawTrailers, body))
      })
    })
    await new Promise<void>((ok) => h1.listen(0, '127.0.0.1', ok))
    await new Promise<void>((ok) => h2.listen(0, '127.0.0.1', ok))
    const h1Port = (h1.address() as net.AddressInfo).port
    const h2Port = (h2.address() as net.AddressInfo).port
    const policy = { requestTimeoutMs: 5000, idleTimeoutMs: 5000 }
    proxy = await startProxy(
      {
        allowUnsigned: true,
        allowNative: true,
        accessLog: 'off',
        admin: { address: '127.0.0.1', port: 0 },
        listeners: [
          { name: 'h1', address: '127.0.0.1', port: 0 },
          { name: 'h2c', address: '127.0.0.1', port: 0, http2: true },
        ],
        clusters: [
          { name: 'web', endpoints: [`127.0.0.1:${h1Port}`] },
          { name: 'grpc', endpoints: [`127.0.0.1:${h2Port}`], http2: true },
        ],
        filters: [
          { name: 'nat', kind: 'native', module: 'nat.mjs', capabilities: ['headers:read', 'headers:write'] },
          { name: 'qjs', kind: 'quickjs', module: 'qjs.js', capabilities: ['headers:read', 'headers:write', 'body:read'] },
          { name: 'hdr', kind: 'native', module: 'hdr.mjs', capabilities: ['headers:read', 'headers:write'] },
          { name: 'late', kind: 'native', module: 'late.mjs', capabilities: ['headers:read', 'headers:write'] },
        ],
        routes: [
          { name: 'nat', match: { prefix: '/nat/' }, cluster: 'web', filters: ['nat'], policy },
          { name: 'qjs-h1', match: { prefix: '/qjs/' }, cluster: 'web', filters: ['qjs'], policy },
          { name: 'qjs-h2', match: { prefix: '/h2qjs/' }, cluster: 'grpc', filters: ['qjs'], policy },
          { name: 'hdr', match: { prefix: '/hdr/' }, cluster: 'web', filters: ['hdr'], policy },
          { name: 'late', match: { prefix: '/late/' }, cluster: 'grpc', filters: ['late'], policy },
          { name: 'h2', match: { prefix: '/h2/' }, cluster: 'grpc', policy },
          { name: 'plain', match: { prefix: '/' }, cluster: 'web', policy },
        ],
      },
      { baseDir: dir, log: silentLogger },
    )
  })

  afterAll(async () => {
    await proxy?.close()
    h1?.closeAllConnections()
    await new Promise<void>((ok) => (h1 ? h1.close(() => ok()) : ok()))
    await new Promise<void>((ok) => (h2 ? h2.close(() => ok()) : ok()))
    await rm(dir, { recursive: true, force: true })
  })

  /** One raw HTTP/1.1 chunked request (exact bytes, trailer section included); resolves with the upstream's record. */
  function rawChunked(path: string, head: string, trailerSection: string): Promise<{ status: number; seen: Seen }> {
    return new Promise((ok, fail) => {
      const s = net.connect(proxy.address('h1').port, '127.0.0.1')
      let data = ''
      s.setEncoding('latin1')
      s.on('data', (d: string) => (data += d))
      s.on('end', () => {
        const end = data.indexOf('\r\n\r\n')
        let body = data.slice(end + 4)
        if (/transfer-encoding: chunked/i.test(data.slice(0, end))) {
          let out = ''
          for (let n = parseInt(body, 16); n > 0; n = parseInt(body, 16)) {
            const at = body.indexOf('\r\n') + 2
            out += body.slice(at, at + n)
            body = body.slice(at + n + 2)
          }
          body = out
        }
        try {
          ok({ status: Number(data.slice(9, 12)), seen: JSON.parse(body) })
        } catch (e) {
          fail(new Error(data, { cause: e }))
        }
      })
      s.on('error', fail)
      s.write(`POST ${path} HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\ntransfer-encoding: chunked\r\n${head}\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n${trailerSection}\r\n`)
    })
  }

  /** One HTTP/2 request with a body and trailers to the proxy's h2c listener. */
  function h2Request(path: string, trailers: Record<string, string>, extra: http2.OutgoingHttpHeaders = {}): Promise<{ status: number; seen: Seen; trailers: http2.IncomingHttpHeaders }> {
    return new Promise((ok, fail) => {
      const c = http2.connect(`http://127.0.0.1:${proxy.address('h2c').port}`)
      c.on('error', fail)
      const s = c.request({ ':method': 'POST', ':path': path, ...extra }, { waitForTrailers: true })
      s.on('wantTrailers', () => s.sendTrailers(trailers))
      let status = 0
      let body = ''
      let respTrailers: http2.IncomingHttpHeaders = {}
      s.on('response', (h) => (status = Number(h[':status'])))
      s.on('trailers', (t) => (respTrailers = t))
      s.setEncoding('utf8')
      s.on('data', (d: string) => (body += d))
      s.on('end', () => {
        c.close()
        try {
          ok({ status, seen: JSON.parse(body), trailers: respTrailers })
        } catch (e) {
          fail(new Error(`status ${status}: ${body}`, { cause: e }))
        }
      })
      s.on('error', fail)
      s.end('hello world')
    })
  }

  async function trailerRequests(cluster: string): Promise<number> {
    const r = await fetch(`http://127.0.0.1:${proxy.adminAddress()!.port}/metrics`)
    const line = `omnirelay_upstream_trailer_requests_total{cluster="${cluster}"} `
    const l = (await r.text()).split('\n').find((x) => x.startsWith(line))
    return l === undefined ? 0 : Number(l.slice(line.length))
  }

  it('forwards an announced HTTP/1.1 chunked trailer to a node:http upstream, without the forbidden fields', async () => {
    const r = await rawChunked(
      '/plain/a',
      'trailer: x-checksum\r\n',
      // (node's server itself refuses content-length and transfer-encoding in a trailer section)
      'x-checksum: abc\r\nhost: evil.test\r\nte: gzip\r\nconnection: x-other\r\nkeep-alive: 1\r\nupgrade: h2c\r\nauthorization: secret\r\ntrailer: x\r\ncontent-type: a/b\r\nx-other: 1\r\n',
    )
    expect(r.status).toBe(200)
    expect(r.seen.body).toBe('hello world')
    expect(r.seen.trailers).toEqual(['x-checksum', 'abc', 'x-other', '1'])
    expect(r.seen.headers.trailer).toBe('x-checksum')
    expect(r.seen.headers.host).toBe('a.test')
  })

  it('keeps requests that cannot carry trailers on the undici path', async () => {
    const before = await trailerRequests('web')
    const post = await fetch(`http://127.0.0.1:${proxy.address('h1').port}/plain/b`, { method: 'POST', body: 'x'.repeat(10) })
    expect(post.status).toBe(200)
    expect(((await post.json()) as Seen).body).toBe('x'.repeat(10))
    const get = await fetch(`http://127.0.0.1:${proxy.address('h1').port}/plain/c`)
    expect(get.status).toBe(200)
    await get.text()
    expect(await trailerRequests('web')).toBe(before)
    await rawChunked('/plain/d', 'trailer: x-checksum\r\n', 'x-checksum: 1\r\n')
    expect(await trailerRequests('web')).toBe(before + 1)
  })

  it('forwards HTTP/2 request trailers to an h2c upstream and relays its response trailers', async () => {
    const before = await trailerRequests('grpc')
    const r = await h2Request('/h2/x', { 'x-checksum': 'h2sum', 'x-two': 'a' }, { 'content-type': 'application/grpc', te: 'trailers' })
    expect(r.status).toBe(200)
    expect(r.seen.body).toBe('hello world')
    expect(r.seen.trailers).toEqual(['x-checksum', 'h2sum', 'x-two', 'a'])
    expect(r.seen.headers['content-type']).toBe('application/grpc')
    expect(r.trailers['x-resp-trailer']).toBe('r')
    expect(await trailerRequests('grpc')).toBe(before + 1)
    // An announced HTTP/1.1 trailer to the same HTTP/2 cluster.
    const h1 = await rawChunked('/h2/from-h1', 'trailer: x-checksum\r\n', 'x-checksum: fromh1\r\n')
    expect(h1.seen.trailers).toEqual(['x-checksum', 'fromh1'])
    expect(h1.seen.headers.trailer).toBe('x-checksum')
  })

  it('HTTP/2 client to an HTTP/1.1 cluster: trailers go when announced, else the request stays on undici', async () => {
    const before = await trailerRequests('web')
    const announced = await h2Request('/plain/h2', { 'x-checksum': 'q' }, { trailer: 'x-checksum' })
    expect([announced.status, announced.seen.body, announced.seen.trailers]).toEqual([200, 'hello world', ['x-checksum', 'q']])
    expect(await trailerRequests('web')).toBe(before + 1)
    const silent = await h2Request('/plain/h2', { 'x-checksum': 'q' })
    expect([silent.status, silent.seen.body, silent.seen.trailers]).toEqual([200, 'hello world', []])
    expect(await trailerRequests('web')).toBe(before + 1)
  })

  it('an HTTP/2 request without trailers still ends cleanly upstream', async () => {
    const r = await h2Request('/h2/none', {})
    expect(r.status).toBe(200)
    expect([r.seen.body, r.seen.trailers]).toEqual(['hello world', []])
  })

  it('runs a native RequestTrailers filter; the upstream sees its changes', async () => {
    const r = await rawChunked('/nat/a', 'trailer: x-checksum\r\n', 'x-checksum: abc\r\n')
    expect(r.status).toBe(200)
    expect(r.seen.trailers).toEqual(['x-checksum', 'native:abc', 'x-added', 'native'])
  })

  it('runs a QuickJS RequestTrailers filter after its body hook, on HTTP/1.1 and HTTP/2', async () => {
    const a = await rawChunked('/qjs/a', 'trailer: x-checksum\r\n', 'x-checksum: abc\r\n')
    expect(a.status).toBe(200)
    expect(a.seen.body).toBe('hello world')
    expect(a.seen.trailers).toEqual(['x-checksum', 'qjs:abc', 'x-added', 'qjs'])
    const b = await h2Request('/h2qjs/b', { 'x-checksum': 'def' })
    expect(b.status).toBe(200)
    expect(b.seen.body).toBe('hello world')
    expect(b.seen.trailers).toEqual(['x-checksum', 'qjs:def', 'x-added', 'qjs'])
  })

  it('a RequestTrailers filter that pauses holds the trailers, not the request: they go upstream once it resumes', async () => {
    const r = await h2Request('/late/a', { 'x-checksum': 'z' })
    expect(r.status).toBe(200)
    expect(r.seen.body).toBe('hello world')
    expect(r.seen.trailers).toEqual(['x-checksum', 'z', 'x-late', 'after-pause'])
  })

  it('passes trailers through unchanged when the chain has no RequestTrailers filter', async () => {
    const r = await rawChunked('/hdr/a', 'trailer: x-checksum\r\n', 'x-checksum: abc\r\n')
    expect(r.status).toBe(200)
    expect(r.seen.headers['x-hdr']).toBe('1')
    expect(r.seen.trailers).toEqual(['x-checksum', 'abc'])
  })
})

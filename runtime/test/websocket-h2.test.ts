/**
 * WebSocket over HTTP/2 (RFC 8441 extended CONNECT) through the running proxy to a real
 * WebSocket upstream, over h2c and h2 over TLS; other CONNECTs; and `Upgrade: h2c` on
 * HTTP/1.1, which is served as plain HTTP/1.1.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy } from '../src/index.ts'
import { silentLogger } from '../src/observability/logger.ts'
import { startFilterProxy, type FilterProxy } from './helpers/filter-proxy.ts'
import { request } from './helpers/servers.ts'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const { NGHTTP2_CANCEL, NGHTTP2_CONNECT_ERROR } = http2.constants

/** A client frame (masked, FIN, text), payload under 126 bytes. */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text)
  const mask = Buffer.from([1, 2, 3, 4])
  const out = Buffer.alloc(6 + payload.length)
  out[0] = 0x81
  out[1] = 0x80 | payload.length
  mask.copy(out, 2)
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i]! ^ mask[i & 3]!
  return out
}

/** Complete frames at the start of `buf` (short lengths only): [opcode, payload, masked][] and the rest. */
function readFrames(buf: Buffer): { frames: [number, Buffer][]; rest: Buffer } {
  const frames: [number, Buffer][] = []
  let off = 0
  while (buf.length - off >= 2) {
    const masked = (buf[off + 1]! & 0x80) !== 0
    const len = buf[off + 1]! & 0x7f
    const start = off + 2 + (masked ? 4 : 0)
    if (len > 125 || buf.length < start + len) break
    const payload = Buffer.from(buf.subarray(start, start + len))
    if (masked) for (let i = 0; i < len; i++) payload[i]! ^= buf[off + 2 + (i & 3)]!
    frames.push([buf[off]! & 0x0f, payload])
    off = start + len
  }
  return { frames, rest: buf.subarray(off) }
}

interface WsUpstream {
  port: number
  seen: { url: string; method: string; headers: http.IncomingHttpHeaders }[]
  open: Set<net.Socket>
  close(): Promise<void>
}

/**
 * A minimal WebSocket echo server: answers the handshake (the accept header computed from
 * the key), echoes text frames; the text `die` closes the socket, `reset` resets it.
 * `/ws/refuse` answers 403 with a body.
 */
async function startWsUpstream(): Promise<WsUpstream> {
  const seen: WsUpstream['seen'] = []
  const open = new Set<net.Socket>()
  const server = http.createServer((_req, res) => res.end('not a websocket'))
  server.on('connection', (s: net.Socket) => {
    open.add(s)
    s.once('close', () => open.delete(s))
  })
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    seen.push({ url: req.url!, method: req.method!, headers: req.headers })
    if (req.url!.startsWith('/ws/refuse')) {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nx-why: nope\r\ncontent-length: 6\r\n\r\ndenied')
      return
    }
    const key = String(req.headers['sec-websocket-key'])
    const accept = createHash('sha1').update(key + GUID).digest('base64')
    const proto = String(req.headers['sec-websocket-protocol'] ?? '').split(',')[0]!.trim()
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n` +
        (proto ? `sec-websocket-protocol: ${proto}\r\n` : '') +
        '\r\n',
    )
    if (req.url!.startsWith('/ws/flood')) {
      // Writes as fast as the proxy takes it, up to 8 MiB: what the proxy read shows its backpressure.
      const chunk = Buffer.alloc(64 * 1024, 120)
      let left = 128
      const pump = () => {
        while (left > 0 && !socket.destroyed) {
          left--
          if (!socket.write(chunk)) return void socket.once('drain', pump)
        }
      }
      pump()
      socket.on('error', () => {})
      return
    }
    let buf: Buffer = Buffer.alloc(0)
    socket.on('data', (d: Buffer) => {
      const r = readFrames(Buffer.concat([buf, d]))
      buf = r.rest
      for (const [op, payload] of r.frames) {
        if (payload.toString() === 'die') return socket.destroy()
        if (payload.toString() === 'reset') return socket.resetAndDestroy()
        socket.write(Buffer.concat([Buffer.from([0x80 | op, payload.length]), payload]))
      }
    })
    socket.on('end', () => socket.end())
    socket.on('error', () => {})
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    open,
    close: () =>
      new Promise<void>((ok) => {
        for (const s of open) s.destroy()
        server.close(() => ok())
      }),
  }
}

/** Waits for `cond`, polling every 10 ms, at most `ms`. */
async function until(cond: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
  return cond()
}

function connectH2(url: string): Promise<http2.ClientHttp2Session> {
  return new Promise((ok, fail) => {
    const c = http2.connect(url, { rejectUnauthorized: false })
    c.once('error', fail)
    c.once('remoteSettings', () => ok(c))
  })
}

interface WsStream {
  stream: http2.ClientHttp2Stream
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader
  /** Next echoed text frame. */
  next(): Promise<string>
  /** The body when the answer is not a tunnel. */
  body(): Promise<string>
}

function openWs(c: http2.ClientHttp2Session, path: string, extra: Record<string, string> = {}, protocol = 'websocket'): Promise<WsStream> {
  return new Promise((ok, fail) => {
    const stream = c.request({ ':method': 'CONNECT', ':protocol': protocol, ':path': path, ':scheme': 'http', ':authority': 'chat.test', 'sec-websocket-version': '13', ...extra })
    let buf: Buffer = Buffer.alloc(0)
    let all = ''
    const frames: string[] = []
    const waiters: ((s: string) => void)[] = []
    stream.on('data', (d: Buffer) => {
      all += d
      buf = Buffer.concat([buf, d])
      const r = readFrames(buf)
      buf = r.rest
      for (const [, p] of r.frames) {
        const w = waiters.shift()
        if (w) w(p.toString())
        else frames.push(p.toString())
      }
    })
    stream.on('error', () => {})
    stream.once('response', (headers) =>
      ok({
        stream,
        headers,
        next: () => new Promise((r) => (frames.length ? r(frames.shift()!) : waiters.push(r))),
        body: () => new Promise((r) => (stream.closed ? r(all) : stream.once('close', () => r(all)))),
      }),
    )
    stream.once('close', () => fail(new Error(`stream closed before a response (rst ${stream.rstCode})`)))
  })
}

function closed(stream: http2.ClientHttp2Stream): Promise<number | undefined> {
  return new Promise((ok) => (stream.closed ? ok(stream.rstCode) : stream.once('close', () => ok(stream.rstCode))))
}

describe('WebSocket over HTTP/2 (RFC 8441) and Upgrade: h2c', () => {
  let fx: FilterProxy
  let ws: WsUpstream
  let certDir: string
  let logFile: string
  let h2c: string
  let h2tls: string

  /** The access-log record of a request id; the log is written once per loop turn, so poll (bounded). */
  async function accessLine(requestId: string): Promise<any> {
    for (let i = 0; i < 100; i++) {
      const text = await readFile(logFile, 'utf8').catch(() => '')
      const rec = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .find((r) => r.requestId === requestId)
      if (rec !== undefined) return rec
      await new Promise((r) => setTimeout(r, 20))
    }
    throw new Error(`no access-log line for ${requestId}`)
  }

  beforeAll(async () => {
    certDir = await mkdtemp(join(tmpdir(), 'h2ws-'))
    logFile = join(certDir, 'access.log')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], { stdio: 'ignore' })
    ws = await startWsUpstream()
    const tls = { cert: join(certDir, 'cert.pem'), key: join(certDir, 'key.pem') }
    fx = await startFilterProxy({
      prefix: 'h2ws-',
      files: {
        'deny.js': `export function onRequestHeaders(req, ctx) {
  if (req.headers.get('x-bad-reply')) return ctx.reply(403, 'x', { connection: 'close' })
  return req.headers.get('x-key') === 'ok' ? 0 : ctx.reply(401, 'no key')
}`,
      },
      config: (upPort) => ({
        allowUnsigned: true,
        accessLog: logFile,
        admin: { address: '127.0.0.1', port: 0 },
        listeners: [
          { name: 'h1', address: '127.0.0.1', port: 0 },
          { name: 'h2c', address: '127.0.0.1', port: 0, http2: true },
          { name: 'h2tls', address: '127.0.0.1', port: 0, http2: true, tls },
          { name: 'h1tls', address: '127.0.0.1', port: 0, tls },
        ],
        clusters: [
          { name: 'web', endpoints: [`127.0.0.1:${upPort}`] },
          { name: 'ws', endpoints: [`127.0.0.1:${ws.port}`] },
        ],
        filters: [{ name: 'deny', kind: 'quickjs', module: 'deny.js', capabilities: ['headers:read', 'local-reply'] }],
        routes: [
          { name: 'ws-auth', match: { prefix: '/ws/auth' }, cluster: 'ws', filters: ['deny'] },
          { name: 'ws', match: { prefix: '/ws' }, cluster: 'ws' },
          { name: 'direct', match: { prefix: '/direct' }, directResponse: { status: 200, body: 'direct' } },
          { name: 'web', match: { prefix: '/' }, cluster: 'web' },
        ],
      }),
    })
    h2c = `http://127.0.0.1:${fx.proxy.address('h2c').port}`
    h2tls = `https://127.0.0.1:${fx.proxy.address('h2tls').port}`
  })
  afterAll(async () => {
    await fx?.close()
    await ws?.close()
    await rm(certDir, { recursive: true, force: true })
  })

  for (const kind of ['h2c', 'h2 over TLS'] as const) {
    it(`tunnels a WebSocket over ${kind}: 101 becomes 200, frames echo both ways, headers carried`, async () => {
      const c = await connectH2(kind === 'h2c' ? h2c : h2tls)
      try {
        expect(c.remoteSettings.enableConnectProtocol).toBe(true)
        const before = ws.seen.length
        const t = await openWs(c, '/ws/chat?room=1', { 'sec-websocket-protocol': 'chat, superchat', 'sec-websocket-extensions': 'permessage-deflate', 'sec-websocket-key': 'Y2xpZW50LXNlbnQta2V5IQ==' })
        expect(t.headers[':status']).toBe(200)
        expect(t.headers['sec-websocket-protocol']).toBe('chat')
        expect(t.headers['sec-websocket-accept']).toBeUndefined()
        expect(t.headers.upgrade).toBeUndefined()
        t.stream.write(clientFrame('hello'))
        expect(await t.next()).toBe('hello')
        t.stream.write(clientFrame('again'))
        expect(await t.next()).toBe('again')

        const up = ws.seen[before]!
        expect(up.method).toBe('GET')
        expect(up.url).toBe('/ws/chat?room=1')
        expect(up.headers.upgrade).toBe('websocket')
        expect(String(up.headers.connection).toLowerCase()).toContain('upgrade')
        expect(up.headers['sec-websocket-version']).toBe('13')
        expect(up.headers['sec-websocket-protocol']).toBe('chat, superchat')
        expect(up.headers['sec-websocket-extensions']).toBe('permessage-deflate')
        expect(up.headers.host).toBe('chat.test')
        // A fresh 16-byte nonce, not whatever the h2 client put there (RFC 8441 §5: none).
        const key = String(up.headers['sec-websocket-key'])
        expect(Buffer.from(key, 'base64')).toHaveLength(16)
        expect(key).not.toBe('Y2xpZW50LXNlbnQta2V5IQ==')

        const openBefore = ws.open.size
        t.stream.end()
        expect(await closed(t.stream)).toBe(0)
        expect(await until(() => ws.open.size < openBefore)).toBe(true)
      } finally {
        c.close()
      }
    })
  }

  it('runs request-header filters first: a denial is relayed and never reaches the upstream', async () => {
    const c = await connectH2(h2c)
    try {
      const before = ws.seen.length
      const denied = await openWs(c, '/ws/auth')
      expect(denied.headers[':status']).toBe(401)
      expect(await denied.body()).toContain('no key')
      expect(ws.seen.length).toBe(before)
      // A filter reply naming a connection-scoped header (which HTTP/2 refuses) is still answered.
      const bad = await openWs(c, '/ws/auth', { 'x-bad-reply': '1' })
      expect(bad.headers[':status']).toBe(403)
      expect(bad.headers.connection).toBeUndefined()
      const allowed = await openWs(c, '/ws/auth', { 'x-key': 'ok' })
      expect(allowed.headers[':status']).toBe(200)
      allowed.stream.write(clientFrame('in'))
      expect(await allowed.next()).toBe('in')
      allowed.stream.end()
      await closed(allowed.stream)
    } finally {
      c.close()
    }
  })

  it("relays the upstream's refusal as is; a 2xx that is not 101 becomes 502", async () => {
    const c = await connectH2(h2c)
    try {
      const refused = await openWs(c, '/ws/refuse')
      expect(refused.headers[':status']).toBe(403)
      expect(refused.headers['x-why']).toBe('nope')
      expect(await refused.body()).toBe('denied')
      // The web upstream answers the GET with a 200: telling the client so would open a tunnel to nothing.
      const plain = await openWs(c, '/plain')
      expect(plain.headers[':status']).toBe(502)
      expect(JSON.parse(await plain.body())).toEqual({ error: 'upgrade_not_accepted', status: 502 })
    } finally {
      c.close()
    }
  })

  it('an upstream closing mid-tunnel ends the h2 stream; an upstream reset resets it with CONNECT_ERROR', async () => {
    const c = await connectH2(h2c)
    try {
      const a = await openWs(c, '/ws/a')
      a.stream.write(clientFrame('x'))
      expect(await a.next()).toBe('x')
      a.stream.write(clientFrame('die'))
      expect(await closed(a.stream)).toBe(0)

      const b = await openWs(c, '/ws/b')
      b.stream.write(clientFrame('reset'))
      expect(await closed(b.stream)).toBe(NGHTTP2_CONNECT_ERROR)
      // The session is still good.
      const d = await openWs(c, '/ws/d')
      d.stream.write(clientFrame('still'))
      expect(await d.next()).toBe('still')
      d.stream.end()
      await closed(d.stream)
    } finally {
      c.close()
    }
  })

  it('a client reset closes the upstream socket (no leaked sockets)', async () => {
    const c = await connectH2(h2tls)
    try {
      const base = ws.open.size
      const streams = await Promise.all([openWs(c, '/ws/1'), openWs(c, '/ws/2'), openWs(c, '/ws/3')])
      for (const s of streams) {
        s.stream.write(clientFrame('ping'))
        expect(await s.next()).toBe('ping')
      }
      expect(ws.open.size).toBe(base + 3)
      for (const s of streams) s.stream.close(NGHTTP2_CANCEL)
      expect(await until(() => ws.open.size === base)).toBe(true)
    } finally {
      c.close()
    }
  })

  it('applies backpressure: a client that does not read stops the proxy reading from the upstream', async () => {
    const c = await connectH2(h2c)
    try {
      const t = await openWs(c, '/ws/flood', { 'x-request-id': 'h2ws-flood-1' })
      t.stream.pause()
      await new Promise((r) => setTimeout(r, 300))
      t.stream.close(NGHTTP2_CANCEL)
      await closed(t.stream)
    } finally {
      c.close()
    }
    const rec = await accessLine('h2ws-flood-1')
    // The client's stream window (64 KiB) plus a few socket buffers, not the 8 MiB on offer.
    expect(rec.bytesSent).toBeGreaterThan(0)
    expect(rec.bytesSent).toBeLessThan(1024 * 1024)
  })

  it('answers CONNECT without :protocol, or with another protocol, with a clean 501', async () => {
    const c = await connectH2(h2c)
    try {
      const plain = await new Promise<{ status: number; body: string }>((ok, fail) => {
        const s = c.request({ ':method': 'CONNECT', ':authority': 'example.com:443' })
        let body = ''
        let status = 0
        s.on('response', (h) => (status = Number(h[':status'])))
        s.on('data', (d) => (body += d))
        s.on('close', () => ok({ status, body }))
        s.on('error', fail)
      })
      expect(plain.status).toBe(501)
      expect(JSON.parse(plain.body).error).toBe('connect_unsupported')

      const other = await openWs(c, '/ws/x', {}, 'connect-udp')
      expect(other.headers[':status']).toBe(501)
      expect(JSON.parse(await other.body()).error).toBe('upgrade_unsupported_protocol')

      const direct = await openWs(c, '/direct')
      expect(direct.headers[':status']).toBe(501)
      expect(JSON.parse(await direct.body()).error).toBe('upgrade_unsupported_route')

      // HTTP/1.1 CONNECT gets the same answer instead of a dropped connection.
      const h1 = await new Promise<string>((ok, fail) => {
        const s = net.connect(fx.port, '127.0.0.1', () => s.write('CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n'))
        let buf = ''
        s.on('data', (d) => (buf += d))
        s.on('close', () => ok(buf))
        s.on('error', fail)
      })
      expect(h1).toMatch(/^HTTP\/1\.1 501 /)
      expect(h1).toContain('connect_unsupported')
    } finally {
      c.close()
    }
  })

  it('logs one access line per tunnel and counts it in the route metrics', async () => {
    const c = await connectH2(h2c)
    try {
      const t = await openWs(c, '/ws/logged', { 'x-request-id': 'h2ws-logged-1' })
      t.stream.write(clientFrame('abc'))
      expect(await t.next()).toBe('abc')
      t.stream.end()
      await closed(t.stream)
    } finally {
      c.close()
    }
    const line = await accessLine('h2ws-logged-1')
    expect(line).toMatchObject({ listener: 'h2c', method: 'CONNECT', path: '/ws/logged', protocol: 'HTTP/2', route: 'ws', cluster: 'ws', status: 200, aborted: false })
    expect(line.bytesReceived).toBe(clientFrame('abc').length)
    expect(line.bytesSent).toBe(5)
    const metrics = (await request(fx.proxy.adminAddress()!.port, { path: '/metrics' })).body
    expect(metrics).toMatch(/omnirelay_requests_total\{listener="h2c",route="ws"\} [1-9]/)
    expect(metrics).toMatch(/omnirelay_responses_total\{listener="h2c",route="ws",class="2xx"\} [1-9]/)
  })

  it('tunnels HTTP/1.1 WebSocket upgrades on the HTTP/1.1 fallback of the h2 TLS listener too', async () => {
    const tls = await import('node:tls')
    const s = tls.connect({ port: fx.proxy.address('h2tls').port, host: '127.0.0.1', ALPNProtocols: ['http/1.1'], rejectUnauthorized: false })
    try {
      let buf = Buffer.alloc(0)
      const got = (cond: (b: Buffer) => boolean) =>
        new Promise<Buffer>((ok, fail) => {
          const check = () => cond(buf) && (s.off('data', on), ok(buf))
          const on = (d: Buffer) => {
            buf = Buffer.concat([buf, d])
            check()
          }
          s.on('data', on).once('error', fail)
          check()
        })
      s.write('GET /ws/h1 HTTP/1.1\r\nhost: chat.test\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
      const head = (await got((b) => b.includes('\r\n\r\n'))).toString()
      expect(head).toMatch(/^HTTP\/1\.1 101 /)
      expect(head).toContain(`sec-websocket-accept: ${createHash('sha1').update('dGhlIHNhbXBsZSBub25jZQ==' + GUID).digest('base64')}`)
      buf = buf.subarray(buf.indexOf('\r\n\r\n') + 4)
      s.write(clientFrame('over h1'))
      const frames = await got((b) => readFrames(b).frames.length > 0)
      expect(readFrames(frames).frames[0]![1].toString()).toBe('over h1')
    } finally {
      s.destroy()
    }
  })

  describe('Upgrade: h2c on HTTP/1.1 is served as plain HTTP/1.1', () => {
    const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n'

    /** Writes raw bytes; resolves with what the proxy answered, up to the end of one chunked response. */
    function exchange(socket: net.Socket, data: string): Promise<string> {
      return new Promise((ok, fail) => {
        let buf = ''
        const onData = (d: Buffer) => {
          buf += d
          if (buf.endsWith('\r\n0\r\n\r\n')) done()
        }
        const done = () => {
          socket.off('data', onData).off('close', done).off('error', fail)
          ok(buf)
        }
        socket.on('data', onData).on('close', done).on('error', fail)
        socket.write(data)
      })
    }

    it('answers with HTTP/1.1 (no 101), forwards no upgrade headers, keeps the body and the connection', async () => {
      const before = fx.up.seen.length
      const s = net.connect(fx.port, '127.0.0.1')
      await new Promise((r) => s.once('connect', r))
      try {
        const out = await exchange(s, `POST /h2c?a=1 HTTP/1.1\r\nHost: app.test\r\n${H2C}Content-Length: 5\r\n\r\nhello`)
        expect(out).toMatch(/^HTTP\/1\.1 200 /)
        expect(out).not.toMatch(/101|upgrade/i)
        const second = await exchange(s, 'GET /second HTTP/1.1\r\nHost: app.test\r\n\r\n')
        expect(second).toMatch(/^HTTP\/1\.1 200 /)
      } finally {
        s.destroy()
      }
      const [first, next] = fx.up.seen.slice(before)
      expect(first).toMatchObject({ method: 'POST', url: '/h2c?a=1', body: 'hello' })
      expect(first!.headers.upgrade).toBeUndefined()
      expect(first!.headers['http2-settings']).toBeUndefined()
      expect(String(first!.headers.connection ?? '')).not.toMatch(/upgrade/i)
      expect(first!.headers.host).toBe('app.test')
      expect(next!.url).toBe('/second')
    })

    it('does the same on TLS HTTP/1.1 (also the h1 fallback of TLS h2) and for a WebSocket route', async () => {
      const tls = await import('node:tls')
      for (const l of ['h1tls', 'h2tls']) {
        const before = fx.up.seen.length
        const out = await new Promise<string>((ok, fail) => {
          const s = tls.connect({ port: fx.proxy.address(l).port, host: '127.0.0.1', ALPNProtocols: ['http/1.1'], rejectUnauthorized: false }, () => {
            s.write(`GET /tls HTTP/1.1\r\nHost: app.test\r\n${H2C}\r\nGET /tls2 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n`)
          })
          let buf = ''
          s.on('data', (d) => (buf += d))
          s.on('close', () => ok(buf))
          s.on('error', fail)
        })
        expect(out).toMatch(/^HTTP\/1\.1 200 [^]*HTTP\/1\.1 200 /)
        expect(fx.up.seen.slice(before).map((r) => [r.url, r.headers.upgrade])).toEqual([
          ['/tls', undefined],
          ['/tls2', undefined],
        ])
      }
      // On a WebSocket route the h2c offer is not tunnelled either: the ws upstream sees a plain GET.
      const wsBefore = ws.seen.length
      const r = await request(fx.port, { path: '/ws/h2c', headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA' } })
      expect([r.status, r.body]).toEqual([200, 'not a websocket'])
      expect(ws.seen.length).toBe(wsBefore)
    })
  })
})

describe('HTTP/2 WebSocket tunnels under the listener limits and drain', () => {
  let ws: WsUpstream
  let proxy: Awaited<ReturnType<typeof startProxy>>

  beforeAll(async () => {
    ws = await startWsUpstream()
    proxy = await startProxy(
      {
        accessLog: 'off',
        limits: { requestTimeoutMs: 300, keepAliveTimeoutMs: 100, headersTimeoutMs: 200, drainTimeoutMs: 200 },
        listeners: [{ name: 'h2c', address: '127.0.0.1', port: 0, http2: true }],
        clusters: [{ name: 'ws', endpoints: [`127.0.0.1:${ws.port}`] }],
        routes: [{ name: 'ws', match: { prefix: '/' }, cluster: 'ws' }],
      },
      { log: silentLogger },
    )
  })
  afterAll(async () => {
    await proxy?.close()
    await ws?.close()
  })

  it('keeps an idle tunnel open past the request timeout, like the HTTP/1.1 tunnel', async () => {
    const c = await connectH2(`http://127.0.0.1:${proxy.address('h2c').port}`)
    try {
      const t = await openWs(c, '/idle')
      await new Promise((r) => setTimeout(r, 800))
      expect(t.stream.closed).toBe(false)
      t.stream.write(clientFrame('awake'))
      expect(await t.next()).toBe('awake')
    } finally {
      c.destroy()
    }
  })

  it('drain: an open tunnel is cut at the drain deadline, and its upstream socket with it', async () => {
    const c = await connectH2(`http://127.0.0.1:${proxy.address('h2c').port}`)
    c.on('error', () => {})
    const t = await openWs(c, '/drain')
    t.stream.write(clientFrame('before'))
    expect(await t.next()).toBe('before')
    const base = ws.open.size
    const started = Date.now()
    await proxy.close()
    expect(Date.now() - started).toBeLessThan(2000)
    expect(await until(() => t.stream.closed)).toBe(true)
    expect(await until(() => ws.open.size < base)).toBe(true)
    c.destroy()
  })
})

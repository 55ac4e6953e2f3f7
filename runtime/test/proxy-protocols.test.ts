import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type ProxyHandle } from '../src/index.ts'
import { createLogger } from '../src/observability/logger.ts'
import { startUpstream, type Upstream } from './helpers/servers.ts'

const quiet = createLogger({ level: process.env.DEBUG_PROXY ? 'debug' : 'error', write: process.env.DEBUG_PROXY ? (l) => console.log(l) : () => {} })

const PROTO = `
syntax = "proto3";
package test;
service Echo {
  rpc Unary (Msg) returns (Msg);
  rpc ServerStream (Msg) returns (stream Msg);
  rpc Bidi (stream Msg) returns (stream Msg);
}
message Msg { string text = 1; }
`

function h2get(url: string, path: string, opts: http2.SecureClientSessionOptions = {}): Promise<{ status: number; body: string; headers: http2.IncomingHttpHeaders }> {
  return new Promise((ok, fail) => {
    const c = http2.connect(url, opts)
    c.on('error', fail)
    const s = c.request({ ':path': path })
    let body = ''
    let headers: http2.IncomingHttpHeaders = {}
    s.on('response', (h) => (headers = h))
    s.on('data', (d) => (body += d))
    s.on('end', () => {
      c.close()
      ok({ status: Number(headers[':status']), body, headers })
    })
    s.on('error', fail)
  })
}

describe('protocols', () => {
  let dir: string
  let up: Upstream
  let grpcServer: grpc.Server
  let wsServer: http.Server
  let proxy: ProxyHandle
  let Echo: grpc.ServiceClientConstructor

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proto-'))
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
    up = await startUpstream((req, res, body) => res.end(`${req.method} ${req.url} ${body.length}`))

    await writeFile(join(dir, 'echo.proto'), PROTO)
    const def = grpc.loadPackageDefinition(protoLoader.loadSync(join(dir, 'echo.proto'))) as unknown as { test: { Echo: grpc.ServiceClientConstructor } }
    Echo = def.test.Echo
    grpcServer = new grpc.Server()
    grpcServer.addService(Echo.service, {
      Unary: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (call.request.text === 'fail') return cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' })
        const md = new grpc.Metadata()
        md.set('x-trailer', 'kept')
        cb(null, { text: `echo:${call.request.text}:${call.metadata.get('x-client')[0] ?? ''}` }, md)
      },
      ServerStream: (call: grpc.ServerWritableStream<{ text: string }, unknown>) => {
        for (let i = 0; i < 3; i++) call.write({ text: `${call.request.text}-${i}` })
        call.end()
      },
      Bidi: (call: grpc.ServerDuplexStream<{ text: string }, unknown>) => {
        call.on('data', (m: { text: string }) => call.write({ text: m.text.toUpperCase() }))
        call.on('end', () => call.end())
      },
    })
    const grpcPort = await new Promise<number>((ok, fail) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? fail(e) : ok(p))))

    wsServer = http.createServer()
    wsServer.on('upgrade', (req, socket) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-seen-path: ${req.url}\r\n\r\n`)
      socket.on('data', (d) => socket.write(Buffer.concat([Buffer.from('echo:'), d])))
    })
    await new Promise<void>((ok) => wsServer.listen(0, '127.0.0.1', ok))
    const wsPort = (wsServer.address() as net.AddressInfo).port

    proxy = await startProxy(
      {
        accessLog: 'off',
        listeners: [
          { name: 'h1', address: '127.0.0.1', port: 0 },
          { name: 'h2c', address: '127.0.0.1', port: 0, http2: true },
          { name: 'tls', address: '127.0.0.1', port: 0, http2: true, tls: { cert: 'cert.pem', key: 'key.pem' } },
          { name: 'tls1', address: '127.0.0.1', port: 0, tls: { cert: 'cert.pem', key: 'key.pem' } },
        ],
        clusters: [
          { name: 'web', endpoints: [`127.0.0.1:${up.port}`] },
          { name: 'grpc', endpoints: [`127.0.0.1:${grpcPort}`], http2: true },
          { name: 'ws', endpoints: [`127.0.0.1:${wsPort}`] },
        ],
        routes: [
          { name: 'grpc', match: { prefix: '/test.Echo/' }, cluster: 'grpc', policy: { requestTimeoutMs: 0, idleTimeoutMs: 5000 } },
          { name: 'ws', match: { prefix: '/ws' }, cluster: 'ws' },
          { name: 'web', match: { prefix: '/' }, cluster: 'web' },
        ],
      },
      { baseDir: dir, log: quiet },
    )
  })
  afterAll(async () => {
    await proxy?.close()
    await up?.close()
    grpcServer?.forceShutdown()
    wsServer?.closeAllConnections()
    wsServer?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('serves h2c with prior knowledge', async () => {
    const r = await h2get(`http://127.0.0.1:${proxy.address('h2c').port}`, '/a?b=1')
    expect([r.status, r.body]).toEqual([200, 'GET /a?b=1 0'])
    expect(r.headers.via).toBe('1.1 omnirelay')
  })

  it('terminates TLS and negotiates h2 through ALPN, with HTTP/1.1 fallback', async () => {
    const port = proxy.address('tls').port
    const r = await h2get(`https://localhost:${port}`, '/tls', { rejectUnauthorized: false })
    expect([r.status, r.body]).toEqual([200, 'GET /tls 0'])
    const proto = await new Promise<string | false>((ok) => {
      const s = tls.connect({ port, host: '127.0.0.1', ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false }, () => {
        ok(s.alpnProtocol ?? false)
        s.destroy()
      })
    })
    expect(proto).toBe('h2')
    for (const l of ['tls', 'tls1']) {
      const body = await new Promise<string>((ok, fail) => {
        https
          .get({ host: '127.0.0.1', port: proxy.address(l).port, path: '/h1', rejectUnauthorized: false, agent: false }, (res) => {
            let b = ''
            res.on('data', (d) => (b += d))
            res.on('end', () => ok(b))
          })
          .on('error', fail)
      })
      expect(body).toBe('GET /h1 0')
    }
  })

  it('passes gRPC through: unary with metadata and trailers, errors, streaming both ways', async () => {
    const client = new Echo(`127.0.0.1:${proxy.address('h2c').port}`, grpc.credentials.createInsecure()) as unknown as Record<string, Function> & grpc.Client
    try {
      const md = new grpc.Metadata()
      md.set('x-client', 'c1')
      const trailers: grpc.Metadata[] = []
      const unary = await new Promise<{ text: string }>((ok, fail) => {
        const call = client.Unary({ text: 'hi' }, md, (e: Error | null, r: { text: string }) => (e ? fail(e) : ok(r)))
        call.on('status', (s: grpc.StatusObject) => trailers.push(s.metadata))
      })
      expect(unary.text).toBe('echo:hi:c1')
      expect(trailers[0]!.get('x-trailer')).toEqual(['kept'])
      const err = await new Promise<grpc.ServiceError>((ok) => client.Unary({ text: 'fail' }, (e: grpc.ServiceError) => ok(e)))
      expect([err.code, err.details]).toEqual([grpc.status.NOT_FOUND, 'no such thing'])

      const streamed = await new Promise<string[]>((ok, fail) => {
        const out: string[] = []
        const s = client.ServerStream({ text: 's' })
        s.on('data', (m: { text: string }) => out.push(m.text))
        s.on('end', () => ok(out))
        s.on('error', fail)
      })
      expect(streamed).toEqual(['s-0', 's-1', 's-2'])

      const bidi = await new Promise<string[]>((ok, fail) => {
        const out: string[] = []
        const s = client.Bidi()
        s.on('data', (m: { text: string }) => {
          out.push(m.text)
          if (out.length === 1) s.write({ text: 'second' })
          else s.end()
        })
        s.on('end', () => ok(out))
        s.on('error', fail)
        s.write({ text: 'first' })
      })
      expect(bidi).toEqual(['FIRST', 'SECOND'])
    } finally {
      client.close()
    }
  })

  it('tunnels WebSocket upgrades both ways', async () => {
    const port = proxy.address('h1').port
    const result = await new Promise<{ head: string; echo: string }>((ok, fail) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write('GET /ws/chat HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
      })
      let buf = ''
      let head = ''
      s.on('data', (d) => {
        buf += d.toString()
        if (!head && buf.includes('\r\n\r\n')) {
          head = buf.slice(0, buf.indexOf('\r\n\r\n'))
          buf = buf.slice(buf.indexOf('\r\n\r\n') + 4)
          s.write('ping')
        }
        if (head && buf === 'echo:ping') {
          s.destroy()
          ok({ head, echo: buf })
        }
      })
      s.on('error', fail)
    })
    expect(result.head).toMatch(/^HTTP\/1\.1 101/)
    expect(result.head.toLowerCase()).toContain('x-seen-path: /ws/chat')
    expect(result.echo).toBe('echo:ping')
  })
})

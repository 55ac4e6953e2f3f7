/**
 * In-proc mode runs the RequestTrailers phase too (issue #2, parity of the three modes): the
 * app, which plays the upstream, sees the trailers as the filters left them, under the same
 * rule as an upstream (fields that must not be trailers are dropped), with or without body
 * filters in the chain.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createInProcPipeline, type InProcPipeline } from '../src/index.ts'
import { createLogger, silentLogger } from '../src/observability/logger.ts'

const FILES = {
  'nat.mjs': `export function onRequestTrailers(req) {
    req.trailers.set('x-checksum', 'native:' + req.trailers.get('x-checksum'))
    req.trailers.add('content-length', '1')
  }`,
  'body.mjs': `export function onRequestBody(req) { req.setBody(req.text().toUpperCase()) }`,
  'late.mjs': `export async function onRequestTrailers(req) {
    await new Promise((r) => setTimeout(r, 20))
    req.trailers.set('x-late', 'after-pause')
  }`,
}

describe('in-proc request trailers', () => {
  let dir: string
  let omni: InProcPipeline
  let server: http.Server
  let port: number

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'inproc-trailers-'))
    for (const [f, src] of Object.entries(FILES)) await writeFile(join(dir, f), src)
    const caps = ['headers:read', 'headers:write', 'body:read', 'body:write']
    omni = await createInProcPipeline(
      {
        allowUnsigned: true,
        allowNative: true,
        accessLog: 'off',
        listeners: [{ name: 'app', address: '127.0.0.1', port: 0 }],
        clusters: [{ name: 'unused', endpoints: ['127.0.0.1:9'] }],
        filters: [
          { name: 'nat', kind: 'native', module: 'nat.mjs', capabilities: caps },
          { name: 'body', kind: 'native', module: 'body.mjs', capabilities: caps },
          { name: 'late', kind: 'native', module: 'late.mjs', capabilities: caps },
        ],
        routes: [
          { name: 'streamed', match: { prefix: '/streamed' }, cluster: 'unused', filters: ['nat'] },
          { name: 'buffered', match: { prefix: '/buffered' }, cluster: 'unused', filters: ['body', 'nat', 'late'] },
        ],
      },
      { baseDir: dir, log: process.env.DEBUG_T ? createLogger({ level: 'debug' }) : silentLogger },
    )
    // The app echoes what it got: the body (its own read, or req.body after body filters) and the trailers.
    server = http.createServer(
      omni.wrap((req, res) => {
        const done = (body: string) => res.end(JSON.stringify({ body, trailers: req.trailers, raw: req.rawTrailers }))
        const filtered = (req as http.IncomingMessage & { body?: Buffer }).body
        if (filtered !== undefined) return done(filtered.toString())
        let body = ''
        req.setEncoding('latin1')
        req.on('data', (c: string) => (body += c))
        req.on('end', () => done(body))
      }),
    )
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
    port = (server.address() as AddressInfo).port
  })

  afterAll(async () => {
    await omni?.close()
    server?.closeAllConnections()
    await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()))
    await rm(dir, { recursive: true, force: true })
  })

  function chunked(path: string): Promise<{ body: string; trailers: Record<string, string>; raw: string[] }> {
    return new Promise((ok, fail) => {
      const s = net.connect(port, '127.0.0.1')
      let data = ''
      s.setEncoding('latin1')
      s.on('data', (d: string) => (data += d))
      s.on('end', () => {
        try {
          ok(JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4)))
        } catch (e) {
          fail(new Error(data, { cause: e }))
        }
      })
      s.on('error', fail)
      s.write(`POST ${path} HTTP/1.1\r\nhost: app\r\nconnection: close\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n`)
    })
  }

  it('the app reading the body itself finds the filtered trailers at its end', async () => {
    const r = await chunked('/streamed')
    expect(r.body).toBe('hello')
    expect(r.trailers).toEqual({ 'x-checksum': 'native:abc' })
    expect(r.raw).toEqual(['x-checksum', 'native:abc'])
  })

  it('with body filters, the app gets body and trailers after both phases, a paused one included', async () => {
    const r = await chunked('/buffered')
    expect(r.body).toBe('HELLO')
    expect(r.trailers).toEqual({ 'x-checksum': 'native:abc', 'x-late': 'after-pause' })
  })
})

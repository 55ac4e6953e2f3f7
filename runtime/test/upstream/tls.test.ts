import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ClusterManager } from '../../src/upstream/types.ts'
import { clusterConfig, codeOf, fetchText, get, manager } from './helpers.ts'
import { selfSigned } from './tls-certs.ts'

describe('TLS to upstreams', () => {
  let server: https.Server
  let port: number
  let cert: string
  const managers: ClusterManager[] = []

  beforeAll(async () => {
    const pair = selfSigned()
    cert = pair.cert
    server = https.createServer({ cert: pair.cert, key: pair.key }, (req, res) => res.end(`secure ${req.url}`))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    port = (server.address() as AddressInfo).port
  })
  afterAll(async () => {
    await Promise.all(managers.map((m) => m.close()))
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  })

  it('verifies the server against the configured CA', async () => {
    const { clusters } = manager([clusterConfig('tls', [port], { tls: { ca: cert, servername: 'localhost' } })])
    managers.push(clusters)
    const r = await fetchText(clusters.get('tls')!.request(get('/a')))
    expect(r.text).toBe('secure /a')
  })

  it('keeps pooled connections when the Host header varies (fixed SNI)', async () => {
    const sockets = new Set<unknown>()
    const onReq = (req: { socket: unknown }) => sockets.add(req.socket)
    server.on('request', onReq)
    const { clusters } = manager([clusterConfig('tls', [port], { tls: { ca: cert, servername: 'localhost' } })])
    managers.push(clusters)
    for (const host of ['a.example', 'b.example', 'c.example', 'a.example']) {
      expect((await fetchText(clusters.get('tls')!.request({ ...get('/h'), headers: ['host', host] }))).text).toBe('secure /h')
    }
    server.off('request', onReq)
    // Without a fixed SNI undici would verify against each Host (and fail) and reconnect on
    // every change; sequential requests may still alternate between two pooled connections.
    expect(sockets.size).toBeLessThanOrEqual(2)
  })

  it('presents a client certificate for mTLS', async () => {
    const client = selfSigned()
    const pair = selfSigned()
    const mtls = https.createServer({ cert: pair.cert, key: pair.key, ca: client.cert, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate()
      res.end(`client ${peer.subject?.CN}`)
    })
    await new Promise<void>((r) => mtls.listen(0, '127.0.0.1', r))
    try {
      const p = (mtls.address() as AddressInfo).port
      const withCert = manager([clusterConfig('m', [p], { tls: { ca: pair.cert, servername: 'localhost', cert: client.cert, key: client.key } })]).clusters
      managers.push(withCert)
      expect((await fetchText(withCert.get('m')!.request(get()))).text).toBe('client localhost')
      const without = manager([clusterConfig('m', [p], { tls: { ca: pair.cert, servername: 'localhost' } })]).clusters
      managers.push(without)
      const code = await codeOf(without.get('m')!.request(get()))
      // TLS 1.3 reports the refused client certificate after the handshake, as a reset.
      expect(['upstream_connect_failure', 'upstream_reset']).toContain(code)
    } finally {
      mtls.closeAllConnections()
      mtls.close()
    }
  })

  it('refuses an untrusted certificate with upstream_connect_failure', async () => {
    const { clusters } = manager([clusterConfig('tls', [port], { tls: { servername: 'localhost' } })])
    managers.push(clusters)
    expect(await codeOf(clusters.get('tls')!.request(get()))).toBe('upstream_connect_failure')
  })

  it('refuses a name mismatch, unless verification is off', async () => {
    const bad = manager([clusterConfig('tls', [port], { tls: { ca: cert, servername: 'other.example' } })]).clusters
    managers.push(bad)
    expect(await codeOf(bad.get('tls')!.request(get()))).toBe('upstream_connect_failure')
    const lax = manager([clusterConfig('tls', [port], { tls: { rejectUnauthorized: false } })]).clusters
    managers.push(lax)
    expect((await fetchText(lax.get('tls')!.request(get('/b')))).text).toBe('secure /b')
  })
})

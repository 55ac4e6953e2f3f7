import { describe, expect, it } from 'vitest'
import { validateConfig } from '../../config/validate.ts'
import { encodeResource } from '../proto/resource-codec.ts'
import { TypeUrl } from '../type-urls.ts'
import type { MeshConfig } from './mesh-config.ts'
import { meshToProxyDoc } from './proxy-doc.ts'
import { decodeWire, meshToResources, resourcesToMesh, MappingError } from './wire.ts'

const DIGEST = `sha256:${'ab'.repeat(32)}`

function sampleMesh(): MeshConfig {
  const cfg = validateConfig(
    {
      listeners: [{ name: 'edge', address: '127.0.0.1', port: 8080 }, { name: 'admin-plane', port: 0, http2: true }],
      clusters: [
        { name: 'api', endpoints: ['127.0.0.1:3000', { host: '127.0.0.2', port: 3001, weight: 3 }], loadBalancing: 'least-request', healthCheck: { path: '/hz' } },
        { name: 'canary', endpoints: ['127.0.0.1:3002'], http2: true, connectTimeoutMs: 1500 },
      ],
      routes: [
        { name: 'hello', match: { path: '/hello', methods: ['GET'] }, directResponse: { status: 201, body: 'hi', headers: { 'x-a': 'b' } } },
        { name: 'old', match: { prefix: '/old' }, redirect: { status: 308, host: 'example.com', path: '/new', stripQuery: true } },
        { name: 'api', listeners: ['edge'], match: { prefix: '/api/', hosts: ['*.example.com'], headers: [{ name: 'x-v', exact: '2' }] }, cluster: 'api', prefixRewrite: '/', policy: { requestTimeoutMs: 1234, retry: { maxRetries: 2 } } },
        { name: 'split', match: { regex: '^/s/[0-9]+$' }, weightedClusters: [{ cluster: 'api', weight: 90 }, { cluster: 'canary', weight: 10 }] },
      ],
    },
    '/',
  )
  return {
    listeners: cfg.listeners.map((l, i) => (i === 0 ? { ...l, filterChain: 'edge-chain' } : l)),
    routes: cfg.routes.map((r) => (r.name === 'api' ? { ...r, filterChain: 'api-chain' } : r)),
    clusters: cfg.clusters,
    filterChains: [
      { name: 'edge-chain', filters: [{ name: 'hdr', bundle: 'add-headers@0.1.0', config: { request: { add: { 'x-a': '1' } } }, failurePolicy: 'fail-open', isolation: 'shared', quotas: { fuel: 2_000_000, memoryBytes: 1 << 20 }, capabilities: ['headers:write', 'log'] }] },
      { name: 'api-chain', filters: [{ name: 'deny', bundle: 'path-deny@0.1.0', failurePolicy: 'fail-closed', isolation: 'per-request', quotas: {}, capabilities: ['headers:read', 'local-reply'] }] },
    ],
    bundles: [
      { name: 'add-headers@0.1.0', version: '0.1.0', digest: DIGEST, registry: 'http://127.0.0.1:1', hostKind: 'wasm', abi: 'proxy-wasm/0.2.1' },
      { name: 'path-deny@0.1.0', version: '0.1.0', digest: DIGEST, registry: 'http://127.0.0.1:1', hostKind: 'wasm', abi: 'proxy-wasm/0.2.1' },
    ],
    splits: [{ name: 's1', targets: [{ variant: 'stable', weight: 9500, filterChain: 'api-chain' }, { variant: 'canary', weight: 500, cluster: 'canary' }], pinHeader: 'x-pin', stickyCookie: 'uid' }],
  }
}

/** Through the real codec: encode each message, decode it as the data plane does. */
function overTheWire(mesh: MeshConfig) {
  const held = new Map<string, Map<string, Record<string, unknown>>>()
  for (const r of meshToResources(mesh)) {
    const m = held.get(r.typeUrl) ?? new Map()
    m.set(r.name, decodeWire(r.typeUrl, encodeResource(r.typeUrl, r.message)))
    held.set(r.typeUrl, m)
  }
  return held
}

describe('mesh config <-> xDS resources', () => {
  it('round-trips through encoded resources', () => {
    const mesh = sampleMesh()
    const back = resourcesToMesh(overTheWire(mesh))
    expect(back.clusters).toEqual(mesh.clusters.map((c) => JSON.parse(JSON.stringify(c))))
    expect(back.routes).toEqual(mesh.routes)
    expect(back.listeners).toEqual(mesh.listeners.map((l) => JSON.parse(JSON.stringify(l))))
    expect(back.filterChains).toEqual(mesh.filterChains)
    expect(back.bundles).toEqual(mesh.bundles)
    expect(back.splits).toEqual(mesh.splits)
  })

  it('yields a proxy config the validator accepts, with chains as filters', () => {
    const back = resourcesToMesh(overTheWire(sampleMesh()))
    const cfg = validateConfig(meshToProxyDoc(back, { trustPolicy: 't.yaml' }, (b) => `/cache/${b.digest.slice(7)}.orb`), '/')
    expect(cfg.listeners[0]!.filters).toEqual(['edge-chain.hdr'])
    expect(cfg.routes.find((r) => r.name === 'api')!.filters).toEqual(['api-chain.deny'])
    expect(cfg.filters.map((f) => f.name).sort()).toEqual(['api-chain.deny', 'edge-chain.hdr'])
    expect(cfg.filters.find((f) => f.name === 'edge-chain.hdr')!.bundle).toEqual({ path: `/cache/${'ab'.repeat(32)}.orb`, digest: DIGEST })
  })

  it('keeps the global route order when routes are scoped to listeners', () => {
    const mesh = sampleMesh()
    // 'api' (edge only) precedes 'split' (every listener); admin-plane's list lacks 'api'.
    const back = resourcesToMesh(overTheWire({ ...mesh, listeners: [...mesh.listeners].reverse() }))
    expect(back.routes.map((r) => r.name)).toEqual(mesh.routes.map((r) => r.name))
  })

  it('names the resource it cannot map', () => {
    const held = overTheWire(sampleMesh())
    held.get(TypeUrl.ClusterLoadAssignment)!.delete('api')
    try {
      resourcesToMesh(held)
      expect.unreachable()
    } catch (e) {
      expect(e).toBeInstanceOf(MappingError)
      expect((e as MappingError).path).toBe('Cluster api')
    }
  })
})

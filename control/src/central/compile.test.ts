import { describe, expect, it } from 'vitest'
import { ConfigError } from '@omnirelay/runtime/config/errors.ts'
import type { BundleManifest } from '@omnirelay/runtime/bundles/manifest.ts'
import { compileGroup, parseBundleRef, type BundleInfo, type CompileContext } from './compile.ts'
import type { GroupConfig } from './store.ts'

const DIGEST = `sha256:${'cd'.repeat(32)}`

function bundle(over: Partial<BundleInfo> = {}): BundleInfo {
  return {
    name: 'deny',
    version: '1.0.0',
    kind: 'wasm',
    digest: DIGEST,
    manifest: {
      abi: 'proxy-wasm/0.2.1',
      quotas: { default: {}, maximum: { fuel: 5_000_000 } },
      configSchema: { type: 'object', properties: { status: { type: 'integer' } }, additionalProperties: false },
    } as unknown as BundleManifest,
    capabilities: ['headers:read', 'local-reply'],
    imports: ['env.proxy_get_header_map_value', 'env.proxy_send_local_response'],
    yanked: null,
    revoked: null,
    ...over,
  }
}

function ctx(b: BundleInfo | null = bundle()): CompileContext {
  return { registryUrl: 'http://reg', maxQuotas: { wasm: { fuel: 1_000_000_000, memoryBytes: 1 << 24 } }, bundle: (n, v) => (b !== null && b.name === n && b.version === v ? b : undefined) }
}

function group(filter: Record<string, unknown> = {}): GroupConfig {
  return {
    listeners: [{ name: 'edge', port: 0, filterChain: 'c' }],
    clusters: [{ name: 'app', endpoints: ['127.0.0.1:1'] }],
    routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'app' }],
    filterChains: [{ name: 'c', filters: [{ name: 'deny', bundle: 'deny@1.0.0', ...filter }] }],
    splits: [],
  }
}

function issues(fn: () => unknown): string[] {
  try {
    fn()
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => i.path)
    throw e
  }
  return []
}

describe('compileGroup', () => {
  it('pins bundles by digest, defaults capabilities to the bundle request, maps chains onto listeners', () => {
    const { mesh } = compileGroup(group({ config: { status: 403 } }), ctx())
    expect(mesh.bundles).toEqual([{ name: 'deny@1.0.0', version: '1.0.0', digest: DIGEST, registry: 'http://reg', hostKind: 'wasm', abi: 'proxy-wasm/0.2.1' }])
    expect(mesh.listeners[0]!.filterChain).toBe('c')
    expect(mesh.filterChains[0]!.filters[0]).toMatchObject({ name: 'deny', bundle: 'deny@1.0.0', capabilities: ['headers:read', 'local-reply'], config: { status: 403 } })
  })

  it('refuses what a data plane would refuse, each problem with its path', () => {
    expect(issues(() => compileGroup(group(), ctx(bundle({ yanked: { reason: 'cve' } } as Partial<BundleInfo>))))).toEqual(['filterChains[c].filters[0].bundle'])
    expect(issues(() => compileGroup(group(), ctx(bundle({ revoked: { reason: 'key leaked' } }))))).toEqual(['filterChains[c].filters[0].bundle'])
    expect(issues(() => compileGroup(group(), ctx(null)))).toEqual(['filterChains[c].filters[0].bundle'])
    expect(issues(() => compileGroup(group({ config: { status: 'x' } }), ctx()))).toEqual(['filterChains[c].filters[0].config.status'])
    expect(issues(() => compileGroup(group({ quotas: { fuel: 6_000_000 } }), ctx()))).toEqual(['filterChains[c].filters[0].quotas.fuel'])
    expect(issues(() => compileGroup(group({ quotas: { memoryBytes: 1 << 25 } }), ctx()))).toEqual(['filterChains[c].filters[0].quotas.memoryBytes'])
    expect(issues(() => compileGroup(group({ capabilities: ['headers:read'] }), ctx()))).toEqual(['filterChains[c].filters[0].capabilities'])
    expect(issues(() => compileGroup(group({ failurePolicy: 'explode' }), ctx()))).toEqual(['filterChains[c].filters[0].failurePolicy'])
    expect(issues(() => compileGroup(group({ colour: 'red' }), ctx()))).toEqual(['filterChains[c].filters[0].colour'])
    const g = group()
    g.routes[0]!.filters = ['x']
    g.listeners[0]!.tls = { cert: 'a', key: 'b' }
    expect(issues(() => compileGroup(g, ctx())).sort()).toEqual(['listeners[edge].tls', 'routes[all].filters'])
  })

  it('checks splits: weights in basis points summing to 10000, known clusters and chains', () => {
    const g = group()
    g.splits = [{ name: 's', targets: [{ variant: 'a', weight: 9000, cluster: 'app' }, { variant: 'b', weight: 500, filterChain: 'nope' }] }]
    expect(issues(() => compileGroup(g, ctx())).sort()).toEqual(['splits[s].targets', 'splits[s].targets[1].filterChain'])
    g.splits = [{ name: 's', targets: [{ variant: 'a', weight: 9500, cluster: 'app' }, { variant: 'b', weight: 500, filterChain: 'c' }], pinHeader: 'x-variant' }]
    expect(compileGroup(g, ctx()).mesh.splits).toEqual([{ name: 's', targets: [{ variant: 'a', weight: 9500, cluster: 'app' }, { variant: 'b', weight: 500, filterChain: 'c' }], pinHeader: 'x-variant' }])
  })

  it('parses scoped bundle references', () => {
    expect(parseBundleRef('@acme/waf@1.2.0')).toEqual({ name: '@acme/waf', version: '1.2.0' })
    expect(parseBundleRef('waf')).toBeUndefined()
    expect(parseBundleRef('waf@')).toBeUndefined()
  })
})

import { afterEach, describe, expect, it } from 'vitest'
import { ADD_HEADERS_CONFIG, api, centralAt, converged, dataPlane, echoUpstream, edgeConfig, get, publish, tempDir, until } from './helpers.ts'

describe('capability negotiation through central', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })

  it('down-levels a chain for a data plane without the host kind (fail-open filters dropped), withholds it when a fail-closed one remains', async () => {
    const tmp = await tempDir()
    cleanups.push(tmp.cleanup)
    const upstream = await echoUpstream()
    cleanups.push(upstream.close)
    const central = await centralAt(`${tmp.dir}/central`)
    cleanups.push(() => central.close())
    const bundle = await publish(central, 'add-headers')
    const cfg = edgeConfig(upstream.port, { bundle, config: ADD_HEADERS_CONFIG })
    ;(cfg.filterChains[0]!.filters[0] as Record<string, unknown>).failurePolicy = 'fail-open'
    const put = await api(central, 'PUT', '/v1/groups/edge', { selector: { role: 'edge' }, config: cfg })
    expect(put.status).toBe(200)

    // A data plane that runs QuickJS only.
    const dp = await dataPlane(central.xdsAddress, `${tmp.dir}/dp`, 'js-only', {
      bootstrap: { address: central.xdsAddress, node: { id: 'js-only', metadata: { role: 'edge' } }, protocol: 'delta', capabilities: { hostKinds: ['quickjs'], abis: ['omnirelay-quickjs/1'] } },
    })
    cleanups.push(() => dp.close())
    await dp.serving
    await converged(central, 'js-only', put.body.epoch)
    const r = await get(dp.proxy!.address('edge').port, '/x')
    expect(r.status).toBe(200)
    expect(r.body.headers['x-added-by']).toBeUndefined()
    const view = (await api(central, "GET", "/v1/dataplanes/js-only")).body
    expect(view.withheld).toContainEqual({ typeUrl: 'type.googleapis.com/omnirelay.v1.BundleRef', name: bundle, reason: 'abi proxy-wasm/0.2.1 not supported', epoch: put.body.epoch })

    // Fail-closed: the chain cannot be down-levelled, so it and the listener using it are withheld.
    const refused = dp.nextEpoch()
    const closed = await api(central, 'PUT', '/v1/groups/edge/filter-chains/main', { filters: [{ name: 'headers', bundle, config: ADD_HEADERS_CONFIG, failurePolicy: 'fail-closed' }] })
    expect(closed.status).toBe(200)
    expect((await refused).error).toMatch(/^no_listeners: /)
    const after = await until(async () => {
      const v = (await api(central, 'GET', '/v1/dataplanes/js-only')).body
      return v.withheld.some((w: { name: string; epoch: number }) => w.name === 'main' && w.epoch === closed.body.epoch) ? v : undefined
    }, 5000, 'withheld chain in the fleet view')
    expect(after.withheld.map((w: { typeUrl: string }) => w.typeUrl.split('.').pop()).sort()).toEqual(['BundleRef', 'FilterChain', 'Listener', 'RouteConfiguration'])
    // The previous (down-levelled) epoch keeps serving.
    expect(dp.proxy!.epoch).toBe(put.body.epoch)
    expect((await get(dp.proxy!.address('edge').port, '/y')).status).toBe(200)
  })
})

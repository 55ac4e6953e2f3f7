import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { XdsProxy } from '@omnirelay/runtime/xds/apply/index.ts'
import type { RunningCentral } from '../../src/central/index.ts'
import { ADD_HEADERS_CONFIG, api, centralAt, dataPlane, echoUpstream, edgeConfig, get, publish, tempDir, until } from './helpers.ts'

describe('central -> xDS -> OmniRelay: the full path', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>
  let central: RunningCentral
  let upstream: Awaited<ReturnType<typeof echoUpstream>>
  let dp: XdsProxy
  let addHeaders: string

  beforeAll(async () => {
    tmp = await tempDir()
    upstream = await echoUpstream()
    central = await centralAt(`${tmp.dir}/central`)
    addHeaders = await publish(central, 'add-headers')
  })
  afterAll(async () => {
    await dp?.close()
    await central?.close()
    await upstream?.close()
    await tmp?.cleanup()
  })

  it('publishes a bundle, attaches it to a route, and a request through OmniRelay shows the filter acting', async () => {
    const put = await api(central, 'PUT', '/v1/groups/edge', {
      selector: { role: 'edge' },
      config: edgeConfig(upstream.port, { bundle: addHeaders, config: ADD_HEADERS_CONFIG }),
    })
    expect(put.status).toBe(200)
    expect(put.body.published).toBe(true)
    const epoch = put.body.epoch as number

    dp = await dataPlane(central.xdsAddress, `${tmp.dir}/dp`)
    await dp.serving
    expect(dp.source).toBe('control-plane')
    expect(dp.epoch).toBe(epoch)
    const port = dp.proxy!.address('edge').port
    const r = await get(port, '/x')
    expect(r.status).toBe(200)
    expect(r.body.headers['x-added-by']).toBe('omnirelay')
    expect(r.headers.get('x-served-by')).toBe('omnirelay')
    expect((await get(port, '/hello')).body).toBe('hi')

    // The fleet view: id, labels, version, epoch, ACK state, last seen.
    const view = await until(async () => {
      const v = (await api(central, 'GET', '/v1/dataplanes')).body.dataPlanes[0]
      return v?.epoch === epoch && v.state === 'ack' ? v : undefined
    }, 5000, 'ACK in the fleet view')
    expect(view).toMatchObject({ id: 'edge-1', group: 'edge', labels: { role: 'edge' }, connected: true, lastError: null })
    expect(view.version).toMatch(/omnirelay/)
    expect(typeof view.lastSeen).toBe('string')
  })

  it('applies a change as a new epoch without dropping the listener', async () => {
    const port = dp.proxy!.address('edge').port
    const next = dp.nextEpoch()
    const put = await api(central, 'PUT', '/v1/groups/edge/filter-chains/main', {
      filters: [{ name: 'headers', bundle: addHeaders, config: { request: { add: { 'x-added-by': 'epoch-2' } } }, quotas: { fuel: 2_000_000 } }],
    })
    expect(put.status).toBe(200)
    expect(await next).toEqual({ epoch: put.body.epoch })
    expect(dp.proxy!.address('edge').port).toBe(port)
    const r = await get(port, '/y')
    expect(r.body.headers['x-added-by']).toBe('epoch-2')
    expect(r.headers.get('x-served-by')).toBeNull()
    expect(dp.proxy!.epoch).toBe(put.body.epoch)
  })

  it('refuses a bad change at the API with path-named errors; nothing reaches the fleet', async () => {
    const before = (await api(central, 'GET', '/v1/groups/edge')).body.epoch
    const cases: [string, string, unknown, string][] = [
      ['PUT', '/v1/groups/edge/routes/app', { match: { prefix: '/' }, cluster: 'nope' }, 'routes[app].cluster'],
      ['PUT', '/v1/groups/edge/routes/app', { match: { prefix: '/' }, cluster: 'app', filterChain: 'ghost' }, 'routes[app].filterChain'],
      ['PUT', '/v1/groups/edge/filter-chains/main', { filters: [{ name: 'h', bundle: 'missing@1.0.0' }] }, 'filterChains[main].filters[0].bundle'],
      ['PUT', '/v1/groups/edge/filter-chains/main', { filters: [{ name: 'h', bundle: addHeaders, quotas: { fuel: 1e12 } }] }, 'filterChains[main].filters[0].quotas.fuel'],
      ['PUT', '/v1/groups/edge/filter-chains/main', { filters: [{ name: 'h', bundle: addHeaders, capabilities: ['headers:read'] }] }, 'filterChains[main].filters[0].capabilities'],
      ['PUT', '/v1/groups/edge/clusters/app', { endpoints: ['nohost'] }, 'clusters[app].endpoints[0]'],
      ['PUT', '/v1/groups/edge/listeners/edge', { port: 99999 }, 'listeners[edge].port'],
      ['DELETE', '/v1/groups/edge/clusters/app', undefined, 'routes[app].cluster'],
    ]
    for (const [method, path, body, issuePath] of cases) {
      const r = await api(central, method, path, body)
      expect(r.status, `${method} ${path}`).toBe(422)
      expect(r.body.error.code).toBe('config_invalid')
      expect(r.body.error.issues.map((i: { path: string }) => i.path)).toContain(issuePath)
    }
    expect((await api(central, 'GET', '/v1/groups/edge')).body.epoch).toBe(before)
    expect(dp.proxy!.epoch).toBe(before)
  })

  it('answers unknown paths, kinds and groups with stable codes', async () => {
    expect((await api(central, 'GET', '/v1/groups/nope')).body.error.code).toBe('not_found')
    expect((await api(central, 'GET', '/v1/groups/edge/widgets')).body.error.code).toBe('not_found')
    expect((await api(central, 'PUT', '/v1/groups/edge/routes/a', { name: 'b' })).body.error.code).toBe('name_mismatch')
    expect((await api(central, 'POST', '/v1/groups/edge/routes/app', {})).status).toBe(405)
  })
})

import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import type { XdsProxy } from '@omnirelay/runtime/xds/apply/index.ts'
import type { RunningCentral } from '../../src/central/index.ts'
import { ADD_HEADERS_CONFIG, api, converged, centralAt, dataPlane, echoUpstream, edgeConfig, get, publish, tempDir, until } from './helpers.ts'

/** Sits in front of the registry; while `corrupt`, blob downloads answer other bytes. */
async function tamperingRegistry(target: () => string) {
  const state = { corrupt: false, blobRequests: 0 }
  const server = http.createServer(async (req, res) => {
    if (req.url?.startsWith('/v1/blobs/')) state.blobRequests++
    if (state.corrupt && req.url?.startsWith('/v1/blobs/')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      return res.end(Buffer.from('not the bundle you pinned'))
    }
    const up = await fetch(`${target()}${req.url}`)
    res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/octet-stream' })
    res.end(Buffer.from(await up.arrayBuffer()))
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  return {
    state,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((ok) => (server.close(() => ok()), server.closeAllConnections())),
  }
}

async function adminText(dp: XdsProxy, path: string): Promise<string> {
  const { port } = dp.proxy!.adminAddress()!
  return (await fetch(`http://127.0.0.1:${port}${path}`)).text()
}

describe('OmniRelay over xDS: refusals, last-known-good, central restarts', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })

  it('NACKs a bundle whose fetched bytes do not match the digest; the previous epoch keeps serving; a fix applies', async () => {
    const tmp = await tempDir()
    cleanups.push(tmp.cleanup)
    const upstream = await echoUpstream()
    cleanups.push(upstream.close)
    let central: RunningCentral | undefined
    const tamper = await tamperingRegistry(() => central!.registryUrl)
    cleanups.push(tamper.close)
    central = await centralAt(`${tmp.dir}/central`, { registryPublicUrl: tamper.url })
    cleanups.push(() => central!.close())
    const bundle = await publish(central, 'add-headers')
    const first = await api(central, 'PUT', '/v1/groups/edge', { selector: { role: 'edge' }, config: edgeConfig(upstream.port) })
    const dp = await dataPlane(central.xdsAddress, `${tmp.dir}/dp`)
    cleanups.push(() => dp.close())
    await dp.serving
    const port = dp.proxy!.address('edge').port
    await converged(central, 'edge-1', first.body.epoch)

    tamper.state.corrupt = true
    const refused = dp.nextEpoch()
    const bad = await api(central, 'PUT', '/v1/groups/edge/config', edgeConfig(upstream.port, { bundle, config: ADD_HEADERS_CONFIG }))
    expect(bad.status).toBe(200)
    const r1 = await refused
    expect(r1.epoch).toBe(bad.body.epoch)
    expect(r1.error).toMatch(/^bundle_digest_mismatch: /)
    // Still the first epoch, no filter.
    expect(dp.proxy!.epoch).toBe(first.body.epoch)
    const during = await get(port, '/a')
    expect(during.status).toBe(200)
    expect(during.body.headers['x-added-by']).toBeUndefined()
    const view = await until(async () => {
      const v = (await api(central!, 'GET', '/v1/dataplanes/edge-1')).body
      return v.refusedEpoch === bad.body.epoch ? v : undefined
    }, 5000, 'refusal in the fleet view')
    expect(view.state).toBe('nack')
    expect(view.epoch).toBe(first.body.epoch)
    expect(view.lastError.message).toMatch(/bundle_digest_mismatch/)
    expect(await adminText(dp, '/ready')).toMatch(/last-refused: epoch \d+: /)

    // The fix: the registry serves the right bytes again and the group changes.
    tamper.state.corrupt = false
    const applied = dp.nextEpoch()
    const fix = await api(central, 'PUT', '/v1/groups/edge/config', edgeConfig(upstream.port, { bundle, config: { request: { add: { 'x-added-by': 'fixed' } } } }))
    expect(await applied).toEqual({ epoch: fix.body.epoch })
    expect((await get(port, '/b')).body.headers['x-added-by']).toBe('fixed')
    await until(async () => ((await api(central!, 'GET', '/v1/dataplanes/edge-1')).body.state === 'ack' ? true : undefined), 5000, 'ACK after the fix')
  })

  it('NACKs a config it cannot serve (listener port taken), keeps serving, then applies the fix', async () => {
    const tmp = await tempDir()
    cleanups.push(tmp.cleanup)
    const upstream = await echoUpstream()
    cleanups.push(upstream.close)
    const blocker = net.createServer()
    await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', ok))
    cleanups.push(() => new Promise<void>((ok) => blocker.close(() => ok())))
    const taken = (blocker.address() as AddressInfo).port
    const central = await centralAt(`${tmp.dir}/central`)
    cleanups.push(() => central.close())
    await api(central, 'PUT', '/v1/groups/edge', { selector: { role: 'edge' }, config: edgeConfig(upstream.port) })
    const dp = await dataPlane(central.xdsAddress, `${tmp.dir}/dp`)
    cleanups.push(() => dp.close())
    await dp.serving
    const port = dp.proxy!.address('edge').port
    const epoch1 = dp.epoch
    await converged(central, 'edge-1', epoch1!)

    const refused = dp.nextEpoch()
    const bad = await api(central, 'PUT', '/v1/groups/edge/listeners/edge', { address: '127.0.0.1', port: taken })
    expect(bad.status).toBe(200)
    expect((await refused).error).toMatch(/EADDRINUSE/)
    expect(dp.epoch).toBe(epoch1)
    expect((await get(port, '/still')).status).toBe(200)

    const applied = dp.nextEpoch()
    const fix = await api(central, 'PUT', '/v1/groups/edge/listeners/edge', { address: '127.0.0.1', port: 0 })
    expect(await applied).toEqual({ epoch: fix.body.epoch })
    expect(dp.epoch).toBe(fix.body.epoch)
    expect((await get(dp.proxy!.address('edge').port, '/after')).status).toBe(200)
  })

  it('starts from last-known-good when central is unreachable, and says so in /ready and metrics', async () => {
    const tmp = await tempDir()
    cleanups.push(tmp.cleanup)
    const upstream = await echoUpstream()
    cleanups.push(upstream.close)
    const central = await centralAt(`${tmp.dir}/central`)
    const bundle = await publish(central, 'add-headers')
    const put = await api(central, 'PUT', '/v1/groups/edge', { selector: { role: 'edge' }, config: edgeConfig(upstream.port, { bundle, config: ADD_HEADERS_CONFIG }) })
    const dp1 = await dataPlane(central.xdsAddress, `${tmp.dir}/dp`)
    await dp1.serving
    await dp1.close()
    const deadAddress = central.xdsAddress
    await central.close()

    // Central is gone (its port closed; the registry too): the data plane starts from disk.
    const dp2 = await dataPlane(deadAddress, `${tmp.dir}/dp`)
    cleanups.push(() => dp2.close())
    await dp2.serving
    expect(dp2.source).toBe('last-known-good')
    expect(dp2.epoch).toBe(put.body.epoch)
    const r = await get(dp2.proxy!.address('edge').port, '/lkg')
    expect(r.status).toBe(200)
    expect(r.body.headers['x-added-by']).toBe('omnirelay')
    const ready = await adminText(dp2, '/ready')
    expect(ready).toMatch(/^ready\n/)
    expect(ready).toMatch(/config-source: last-known-good/)
    expect(ready).toMatch(/control-plane: (connecting|backoff)/)
    expect(ready).toMatch(/last-known-good: serving the config saved at /)
    const metrics = await adminText(dp2, '/metrics')
    expect(metrics).toMatch(/omnirelay_xds_config_source\{source="last-known-good"\} 1/)
    expect(metrics).toMatch(/omnirelay_xds_connected 0/)
  })

  it('reconverges after central restarts mid-stream, without resending or reloading what it has', async () => {
    const tmp = await tempDir()
    cleanups.push(tmp.cleanup)
    const upstream = await echoUpstream()
    cleanups.push(upstream.close)
    let central = await centralAt(`${tmp.dir}/central`)
    const bundle = await publish(central, 'add-headers')
    const put = await api(central, 'PUT', '/v1/groups/edge', { selector: { role: 'edge' }, config: edgeConfig(upstream.port, { bundle, config: ADD_HEADERS_CONFIG }) })
    const xdsPort = Number(central.xdsAddress.split(':').pop())
    const registryPort = Number(new URL(central.registryUrl).port)
    const dp = await dataPlane(central.xdsAddress, `${tmp.dir}/dp`)
    cleanups.push(() => dp.close())
    await dp.serving
    const port = dp.proxy!.address('edge').port
    const acksBefore = dp.client.status.acks
    await converged(central, 'edge-1', put.body.epoch)

    await central.close()
    await until(() => (dp.client.status.state !== 'connected' ? true : undefined), 5000, 'stream loss')
    expect((await get(port, '/during')).body.headers['x-added-by']).toBe('omnirelay')

    central = await centralAt(`${tmp.dir}/central`, { xdsPort, registryPort })
    cleanups.push(() => central.close())
    // Same epoch from the store, same content: the client resumes with its versions and nothing is resent.
    await converged(central, 'edge-1', put.body.epoch)
    expect(dp.client.status.nacks).toBe(0)
    expect(dp.proxy!.epoch).toBe(put.body.epoch)

    const applied = dp.nextEpoch()
    const next = await api(central, 'PUT', '/v1/groups/edge/filter-chains/main', {
      filters: [{ name: 'headers', bundle, config: { request: { add: { 'x-added-by': 'after-restart' } } } }],
    })
    expect(next.body.epoch).toBeGreaterThan(put.body.epoch)
    expect(await applied).toEqual({ epoch: next.body.epoch })
    expect((await get(port, '/after')).body.headers['x-added-by']).toBe('after-restart')
    expect(dp.client.status.acks).toBeGreaterThan(acksBefore)
  })
})

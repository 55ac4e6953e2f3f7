// A bundle revoked in central's registry stops running on an OmniRelay configured over xDS,
// within the data plane's poll interval; the list persists in the data plane's data dir.
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { XdsProxy } from '@omnirelay/runtime/xds/apply/index.ts'
import type { RunningCentral } from '../../src/central/index.ts'
import { ADD_HEADERS_CONFIG, api, centralAt, dataPlane, echoUpstream, edgeConfig, exampleBundle, get, publish, tempDir, TOKEN, until } from './helpers.ts'

describe('central registry revocation -> OmniRelay over xDS', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>
  let central: RunningCentral
  let upstream: Awaited<ReturnType<typeof echoUpstream>>
  let dp: XdsProxy

  beforeAll(async () => {
    tmp = await tempDir()
    upstream = await echoUpstream()
    central = await centralAt(`${tmp.dir}/central`)
  })
  afterAll(async () => {
    await dp?.close()
    await central?.close()
    await upstream?.close()
    await tmp?.cleanup()
  })

  it('stops running the revoked bundle and keeps the list on disk', async () => {
    const addHeaders = await publish(central, 'add-headers')
    const put = await api(central, 'PUT', '/v1/groups/edge', { selector: { role: 'edge' }, config: edgeConfig(upstream.port, { bundle: addHeaders, config: ADD_HEADERS_CONFIG }) })
    expect(put.status).toBe(200)
    dp = await dataPlane(central.xdsAddress, `${tmp.dir}/dp`, 'edge-1', { registry: { url: central.registryUrl, pollIntervalMs: 100 } })
    await dp.serving
    const port = dp.proxy!.address('edge').port
    expect((await get(port, '/x')).body.headers['x-added-by']).toBe('omnirelay')

    const digest = exampleBundle('add-headers').digest
    const res = await fetch(`${central.registryUrl}/v1/revocations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ digest, reason: 'cve' }),
    })
    expect(res.status).toBe(201)
    // Fail-closed (the default): the route answers 503 and the filter's code no longer runs.
    const r = await until(async () => {
      const g = await get(port, '/x')
      return g.status === 503 ? g : undefined
    }, 3000, 'the revoked filter to stop')
    expect(r.body).toMatchObject({ error: 'filter_failed', code: 'unavailable' })
    const saved = JSON.parse(await readFile(`${tmp.dir}/dp/revocations.json`, 'utf8'))
    expect(saved.digests).toContain(digest)

    // Restart with central and its registry gone: the last-known-good config names the revoked
    // bundle, so it is refused from the persisted list rather than served.
    const registryUrl = central.registryUrl
    await dp.close()
    await central.close()
    dp = await dataPlane('127.0.0.1:1', `${tmp.dir}/dp`, 'edge-1', { registry: { url: registryUrl, pollIntervalMs: 100 } })
    expect(dp.source).toBe('none')
    expect(dp.proxy).toBeUndefined()
  })
})

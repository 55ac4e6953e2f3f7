import { afterEach, expect, it } from 'vitest'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { composeCallbacks, DataPlaneDirectory, SnapshotCache, startXdsServer, type XdsServer } from '../../src/xds/index.ts'
import { serviceSnapshot } from './fixtures.ts'
import { until } from './harness.ts'
import { node, rawClient } from './raw-client.ts'

let xds: XdsServer | undefined
afterEach(async () => xds?.close())

it('tracks connected and disconnected data planes with their epoch and ACK/NACK state', async () => {
  const cache = new SnapshotCache()
  cache.setSnapshot('dp', serviceSnapshot(2, [{ name: 'a', ports: [1] }]))
  const directory = new DataPlaneDirectory()
  let nacks = 0
  xds = await startXdsServer({ cache, callbacks: composeCallbacks(directory, { onNack: () => void nacks++ }) })
  const c = rawClient(xds.address)
  const s = c.delta()
  s.request({ typeUrl: TypeUrl.Cluster, node: node('dp', { region: 'eu' }) })
  const r = await s.next()
  s.request({ typeUrl: r.typeUrl, responseNonce: r.nonce, errorDetail: { code: 3, message: 'no' } })
  await until(() => directory.get('dp')?.state === 'nack')
  expect(nacks).toBe(1)
  expect(directory.get('dp')).toMatchObject({ connected: true, labels: { region: 'eu' }, refusedEpoch: 2, lastError: { message: 'no', epoch: 2 } })
  s.close()
  await until(() => directory.get('dp')?.connected === false)
  expect(directory.list()).toHaveLength(1)
  expect(directory.get('dp')!.closeReason).toBe('client-closed')
  c.close()
})

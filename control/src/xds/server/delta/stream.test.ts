import { expect, it } from 'vitest'
import { decodeDeltaDiscoveryResponse } from '@omnirelay/runtime/xds/proto/messages.ts'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { makeResource } from '../../cache/resource.ts'
import { Snapshot } from '../../cache/snapshot.ts'
import { SnapshotCache } from '../../cache/snapshot-cache.ts'
import { DeltaStream } from './stream.ts'

const bundle = (name: string, digest: string) => makeResource(TypeUrl.BundleRef, name, { name, digest })

it('a client that is not reading gets the newest snapshot once it drains, not every one in between', () => {
  const cache = new SnapshotCache()
  cache.setSnapshot('n', new Snapshot(1, [bundle('b', 'sha256:1')]))
  const sent: Buffer[] = []
  let congested = false
  const stream = new DeltaStream({ cache }, { send: (b) => void sent.push(b), congested: () => congested, close: () => {} }, 't1')
  const node = { id: 'n', cluster: '', metadata: {}, userAgentName: '', userAgentVersion: '', clientFeatures: [] }
  stream.handle({ node, typeUrl: TypeUrl.BundleRef, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: '' })
  expect(sent).toHaveLength(1)
  congested = true
  for (let e = 2; e <= 5; e++) cache.setSnapshot('n', new Snapshot(e, [bundle('b', `sha256:${e}`)]))
  expect(sent).toHaveLength(1)
  congested = false
  stream.drained()
  expect(sent).toHaveLength(2)
  expect(decodeDeltaDiscoveryResponse(sent[1]!).systemVersionInfo).toBe('5')
  stream.close({ reason: 'server-closed' })
  expect(cache.watcherCount()).toBe(0)
})

it('keeps a bounded number of unanswered responses for a client that never ACKs', () => {
  const cache = new SnapshotCache()
  cache.setSnapshot('n', new Snapshot(1, [bundle('b', 'sha256:1')]))
  let sent = 0
  const stream = new DeltaStream({ cache }, { send: () => void sent++, close: () => {} }, 't2')
  const node = { id: 'n', cluster: '', metadata: {}, userAgentName: '', userAgentVersion: '', clientFeatures: [] }
  stream.handle({ node, typeUrl: TypeUrl.BundleRef, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: '' })
  for (let e = 2; e <= 300; e++) cache.setSnapshot('n', new Snapshot(e, [bundle('b', `sha256:${e}`)]))
  expect(sent).toBe(300)
  expect(stream.dataPlane!.state).toBe('pending')
  // Only the newest 64 responses of the type are still tracked.
  expect(stream.dataPlane!.pendingCount).toBe(64)
  stream.close({ reason: 'server-closed' })
})

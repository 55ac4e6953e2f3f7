/**
 * Untrusted input: any sequence of well-formed but arbitrary requests must leave
 * both stream kinds consistent — no throw, every response decodable, nothing sent
 * for a type the client never asked for, and a NACKed delta version never resent.
 */
import fc from 'fast-check'
import { expect, it } from 'vitest'
import { decodeDeltaDiscoveryResponse, decodeDiscoveryResponse } from '@omnirelay/runtime/xds/proto/messages.ts'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { makeResource } from '../cache/resource.ts'
import { Snapshot } from '../cache/snapshot.ts'
import { SnapshotCache } from '../cache/snapshot-cache.ts'
import { DeltaStream } from './delta/stream.ts'
import { SotwStream } from './sotw/stream.ts'

const TYPES = [TypeUrl.BundleRef, TypeUrl.FilterChain, TypeUrl.RouteConfiguration, 'type.googleapis.com/x.Unknown']
const NAMES = ['a', 'b', 'c', '*']
const node = { id: 'n', cluster: '', metadata: {}, userAgentName: '', userAgentVersion: '', clientFeatures: [] }

function snapshot(epoch: number, seed: number): Snapshot {
  const rs = []
  for (const n of ['a', 'b', 'c']) {
    if ((seed + n.charCodeAt(0)) % 3 !== 0) rs.push(makeResource(TypeUrl.BundleRef, n, { name: n, digest: `sha256:${seed}` }))
  }
  if (seed % 2 === 0) rs.push(makeResource(TypeUrl.FilterChain, 'a', { name: 'a' }))
  return new Snapshot(epoch, rs)
}

const step = fc.oneof(
  fc.record({ kind: fc.constant('publish' as const), seed: fc.nat(3) }),
  fc.record({
    kind: fc.constant('request' as const),
    type: fc.constantFrom(...TYPES),
    subscribe: fc.subarray(NAMES),
    unsubscribe: fc.subarray(NAMES),
    nonce: fc.oneof(fc.constant('last'), fc.constant(''), fc.string({ maxLength: 4 })),
    nack: fc.boolean(),
  }),
)

it('delta and SotW streams survive arbitrary request sequences', () => {
  fc.assert(
    fc.property(fc.array(step, { maxLength: 30 }), (steps) => {
      for (const kind of ['delta', 'sotw'] as const) {
        const cache = new SnapshotCache({ requireConsistent: false })
        let epoch = 1
        cache.setSnapshot('n', snapshot(epoch, 0))
        const sent: Buffer[] = []
        const transport = { send: (b: Buffer) => void sent.push(b), close: () => {} }
        const opts = { cache, nackBackoff: { baseMs: 0, maxMs: 0 } }
        const stream = kind === 'delta' ? new DeltaStream(opts, transport, 'f') : new SotwStream(opts, transport, 'f')
        const asked = new Set<string>()
        const nacked = new Map<string, string>()
        let first = true
        const checkNoRefusedResent = (from: number) => {
          if (kind !== 'delta') return
          for (const b of sent.slice(from)) {
            const r = decodeDeltaDiscoveryResponse(b)
            for (const x of r.resources) expect(nacked.get(`${r.typeUrl}|${x.name}`)).not.toBe(x.version)
          }
        }
        for (const s of steps) {
          if (s.kind === 'publish') {
            const from = sent.length
            cache.setSnapshot('n', snapshot(++epoch, s.seed))
            checkNoRefusedResent(from)
            continue
          }
          asked.add(s.type)
          const last = sent.length > 0 ? sent[sent.length - 1]! : undefined
          const lastNonce = last ? (kind === 'delta' ? decodeDeltaDiscoveryResponse(last) : decodeDiscoveryResponse(last)).nonce : ''
          const nonce = s.nonce === 'last' ? lastNonce : s.nonce
          const errorDetail = s.nack && nonce !== '' ? { code: 3, message: 'no' } : undefined
          const before = sent.length
          if (kind === 'delta') {
            // Model of what the client refused (answering the latest response of the same type).
            const lastRes = last ? decodeDeltaDiscoveryResponse(last) : undefined
            if (lastRes && nonce === lastNonce && lastRes.typeUrl === s.type) {
              for (const r of lastRes.resources) {
                if (errorDetail) nacked.set(`${s.type}|${r.name}`, r.version)
                else nacked.delete(`${s.type}|${r.name}`)
              }
            }
            for (const n of s.unsubscribe) {
              for (const k of [...nacked.keys()]) if (k.startsWith(`${s.type}|`) && (n === '*' || k === `${s.type}|${n}`)) nacked.delete(k)
            }
            ;(stream as DeltaStream).handle({
              ...(first ? { node } : {}), typeUrl: s.type, resourceNamesSubscribe: s.subscribe,
              resourceNamesUnsubscribe: s.unsubscribe, initialResourceVersions: {}, responseNonce: nonce, ...(errorDetail ? { errorDetail } : {}),
            })
          } else {
            ;(stream as SotwStream).handle({
              ...(first ? { node } : {}), typeUrl: s.type, versionInfo: '', resourceNames: s.subscribe,
              responseNonce: nonce, ...(errorDetail ? { errorDetail } : {}),
            })
          }
          first = false
          checkNoRefusedResent(before)
        }
        for (const b of sent) {
          const r = kind === 'delta' ? decodeDeltaDiscoveryResponse(b) : decodeDiscoveryResponse(b)
          expect(asked.has(r.typeUrl)).toBe(true)
        }
        stream.close({ reason: 'server-closed' })
        expect(cache.watcherCount()).toBe(0)
      }
    }),
    { numRuns: 150 },
  )
})

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeDeltaDiscoveryResponse, decodeDiscoveryResponse } from '@omnirelay/runtime/xds/proto/messages.ts'
import { encodeAny, encodeDeltaDiscoveryResponseBytes, encodeDeltaResource, encodeDiscoveryResponseBytes } from './response-encoder.ts'

const str = fc.string({ unit: 'grapheme', maxLength: 40 })
const bytes = fc.uint8Array({ maxLength: 300 })

describe('hand-written response encoder', () => {
  it('SotW responses decode with the published protos to what was encoded', () => {
    fc.assert(
      fc.property(str, str, str, fc.array(fc.tuple(str, bytes), { maxLength: 5 }), str, (version, typeUrl, nonce, res, cp) => {
        const wire = encodeDiscoveryResponseBytes(version, typeUrl, nonce, res.map(([t, v]) => encodeAny(t, v)), cp)
        const d = decodeDiscoveryResponse(wire)
        expect(d.versionInfo).toBe(version)
        expect(d.typeUrl).toBe(typeUrl)
        expect(d.nonce).toBe(nonce)
        expect(d.controlPlane ?? '').toBe(cp)
        expect(d.resources.map((a) => [a.typeUrl, Buffer.from(a.value).toString('hex')])).toEqual(res.map(([t, v]) => [t, Buffer.from(v).toString('hex')]))
      }),
      { numRuns: 200 },
    )
  })

  it('delta responses decode with the published protos to what was encoded', () => {
    fc.assert(
      fc.property(str, str, fc.array(fc.tuple(str, str, bytes), { maxLength: 5 }), fc.array(str, { maxLength: 5 }), (sys, nonce, res, removed) => {
        const typeUrl = 'type.googleapis.com/omnirelay.v1.FilterChain'
        const wire = encodeDeltaDiscoveryResponseBytes(sys, typeUrl, nonce, res.map(([n, v, b]) => encodeDeltaResource(n, v, encodeAny(typeUrl, b))), removed)
        const d = decodeDeltaDiscoveryResponse(wire)
        expect(d.systemVersionInfo).toBe(sys)
        expect(d.nonce).toBe(nonce)
        expect(d.removedResources).toEqual(removed)
        expect(d.resources.map((r) => [r.name, r.version, Buffer.from(r.resource!.value).toString('hex')])).toEqual(
          res.map(([n, v, b]) => [n, v, Buffer.from(b).toString('hex')]),
        )
      }),
      { numRuns: 200 },
    )
  })

  it('handles payloads whose lengths need multi-byte varints', () => {
    const big = new Uint8Array(70_000).fill(7)
    const d = decodeDiscoveryResponse(encodeDiscoveryResponseBytes('1', 't', 'n', [encodeAny('t', big)]))
    expect(d.resources[0]!.value.length).toBe(70_000)
  })
})

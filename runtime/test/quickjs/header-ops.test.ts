/**
 * Property test: any sequence of header operations made by a QuickJS filter leaves exactly
 * the header map that the same operations on the host's HeaderMap give (the prelude keeps its
 * own copy and index of the map inside the sandbox; this is what keeps the two in step).
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { host } from '../../src/hosts/quickjs/index.ts'
import type { FilterFactory } from '../../src/pipeline/filter.ts'
import { HeaderMap } from '../../src/pipeline/header-map.ts'
import { jsArtifact, makeDef, makeServices, makeStream, requestHeaders } from './fixtures.ts'

type Op = ['set' | 'add', string, string] | ['remove' | 'get' | 'has' | 'getAll', string]

let f: FilterFactory
beforeAll(async () => {
  // The ops arrive in a header; reads are recorded in x-reads so they are compared too.
  const src = `export function onRequestHeaders(req) {
    const h = req.headers
    const ops = JSON.parse(h.get('x-ops'))
    h.remove('x-ops')
    const reads = []
    for (const [op, name, value] of ops) {
      if (op === 'set') h.set(name, value)
      else if (op === 'add') h.add(name, value)
      else if (op === 'remove') reads.push(h.remove(name))
      else if (op === 'get') reads.push(h.get(name) ?? null)
      else if (op === 'has') reads.push(h.has(name))
      else reads.push(h.getAll(name))
    }
    h.set('x-reads', JSON.stringify(reads))
  }`
  f = await host.createFactory(makeDef('ops', 'quickjs'), jsArtifact(src), makeServices())
})
afterAll(async () => {
  await f.close()
})

const name = fc.constantFrom('a', 'b', 'A', 'x-y', 'B', ':path', 'v')
const value = fc.constantFrom('1', '2', 'a', 'b', 'x-y', '')
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.tuple(fc.constantFrom('set' as const, 'add' as const), name, value),
  fc.tuple(fc.constantFrom('remove' as const, 'get' as const, 'has' as const, 'getAll' as const), name),
)

describe('QuickJS header views', () => {
  it('agree with HeaderMap on every sequence of operations', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 5 }), fc.array(op, { maxLength: 20 }), (initial, ops) => {
        const extra: [string, string][] = [...initial.map(([n, v]) => [n.toLowerCase(), v] as [string, string]), ['x-ops', JSON.stringify(ops)]]
        const { stream, error } = requestHeaders(f, makeStream('/', extra))
        expect(error).toBeUndefined()
        const want = HeaderMap.fromPairs([[':method', 'GET'], [':path', '/'], [':authority', 'example.com'], [':scheme', 'http'], ...extra])
        want.remove('x-ops')
        const reads: unknown[] = []
        for (const [o, n, v] of ops) {
          const ln = n.toLowerCase()
          if (o === 'set') want.set(n, v!)
          else if (o === 'add') want.add(n, v!)
          else if (o === 'remove') reads.push(want.remove(n))
          else if (o === 'get') reads.push(want.get(ln) ?? null)
          else if (o === 'has') reads.push(want.has(ln))
          else reads.push(want.getAll(ln))
        }
        want.set('x-reads', JSON.stringify(reads))
        expect(stream.requestHeaders.flat).toEqual(want.flat)
      }),
      { numRuns: 300 },
    )
  })
})

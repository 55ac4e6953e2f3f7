import fc from 'fast-check'
import { expect, it } from 'vitest'
import { jsonToStruct, structToJson } from './struct.ts'
import { protoType } from './root.ts'

it('JSON survives Struct encoding on the wire', () => {
  const Struct = protoType('google.protobuf.Struct')
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })), (obj) => {
      const json = JSON.parse(JSON.stringify(obj)) as Record<string, unknown>
      const wire = Struct.encode(Struct.fromObject(jsonToStruct(json))).finish()
      const back = structToJson(Struct.toObject(Struct.decode(wire), { oneofs: true }) as never)
      // -0 and 0 are equal in JSON.
      expect(JSON.stringify(back)).toBe(JSON.stringify(json))
    }),
    { numRuns: 200, examples: [[{ ['__proto__']: { a: 1 } } as Record<string, unknown>]] },
  )
})

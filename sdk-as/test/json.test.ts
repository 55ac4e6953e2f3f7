import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { buildFilter } from '../build.js'
import { AbiHarness } from './abi-harness.ts'

const here = dirname(fileURLToPath(import.meta.url))
let wasm: Uint8Array
beforeAll(async () => {
  const dir = join(here, 'fixtures', 'json-echo')
  wasm = (await buildFilter({ entry: join(dir, 'assembly', 'index.ts'), outFile: join(dir, 'build', 'filter.wasm'), cache: true })).wasm
})

/** What the SDK's JSON reader makes of `text`: the parsed value, or undefined when it refuses it. */
async function sdkParse(text: string): Promise<unknown> {
  const h = await AbiHarness.load(wasm)
  const ok = h.configure(text)
  const out = h.logs.at(-1)!.message
  expect(ok).toBe(out !== 'invalid')
  return out === 'invalid' ? undefined : JSON.parse(out)
}

function jsParse(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Numbers to 12 significant digits: the reader is exact for usual config numbers, close (not always correctly rounded) beyond. */
function approx(v: unknown): unknown {
  if (typeof v === 'number') return Number.isFinite(v) ? Number(v.toPrecision(12)) : null
  if (Array.isArray(v)) return v.map(approx)
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, approx(x)]))
  return v
}

describe('the SDK JSON reader', () => {
  it('reads what JSON.stringify writes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 6 }), async (v) => {
        const text = JSON.stringify(v)
        expect(approx(await sdkParse(text))).toEqual(approx(JSON.parse(text)))
      }),
      { numRuns: 150 },
    )
  })

  it('accepts exactly what JSON.parse accepts (for shallow input)', async () => {
    const jsonish = fc.stringMatching(/^[\s{}[\]",:0-9eE.+\-tfrulnas\\/]{0,24}$/)
    await fc.assert(
      fc.asyncProperty(fc.oneof(jsonish, fc.string({ maxLength: 24 })), async (text) => {
        const expected = jsParse(text)
        // An empty configuration is an empty object by design.
        if (text === '') return
        expect(approx(await sdkParse(text))).toEqual(approx(expected))
      }),
      { numRuns: 300 },
    )
  })

  it.each([
    ['"a\\u00e9\\n\\"b"', 'aé\n"b'],
    ['{"a":1,"a":2}', { a: 2 }],
    ['  [1.5e3, -0.25, true, null]  ', [1500, -0.25, true, null]],
    ['[0.1, 1e-7, 12345.678, 9007199254740993, -42]', [0.1, 1e-7, 12345.678, 9007199254740993, -42]],
  ])('parses %s', async (text, value) => {
    expect(await sdkParse(text)).toEqual(value)
  })

  it('reads huge, tiny and long numbers to within a few ulp', async () => {
    const text = '[123456789012345678901234, 9.343206231006412e+40, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308]'
    const got = (await sdkParse(text)) as number[]
    const want = JSON.parse(text) as number[]
    got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(Math.abs(want[i]!) * 1e-15))
  })

  it.each(['01', '1.', '.5', '[1,]', '{"a" 1}', '"\u0001"', "'a'", 'nul', '[' .repeat(100) + ']'.repeat(100)])('refuses %s without trapping', async (text) => {
    expect(await sdkParse(text)).toBeUndefined()
  })
})

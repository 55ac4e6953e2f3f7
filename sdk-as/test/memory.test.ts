import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import { buildExamples } from '../../examples/filters/build.js'
import { buildFilter } from '../build.js'
import { AbiHarness } from './abi-harness.ts'

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}/assembly/index.ts`, import.meta.url))

let modules: Record<string, Uint8Array>
beforeAll(async () => {
  modules = await buildExamples(['add-headers', 'callout-auth'])
})

describe('a long-lived (shared) instance', () => {
  it('reclaims per-request memory: 50k requests stay within a few pages', async () => {
    const h = await AbiHarness.load(modules['add-headers']!)
    expect(h.configure({ request: { add: { 'x-a': '1' }, remove: ['x-b'] }, response: { set: { server: 'o' } } })).toBe(true)
    const before = h.exports.memory.buffer.byteLength
    for (let id = 2; id < 50_002; id++) {
      h.requestHeaders(id, [[':path', `/items/${id}`], ['x-b', 'x'.repeat(200)]])
      h.responseHeaders(id, [[':status', '200']])
      h.finish(id)
    }
    expect(h.exports.memory.buffer.byteLength).toBeLessThanOrEqual(before + 4 * 65536)
  })

  it('forgets callouts of streams that end before the answer arrives', async () => {
    const h = await AbiHarness.load(modules['callout-auth']!)
    expect(h.configure({ cluster: 'auth' })).toBe(true)
    const before = h.exports.memory.buffer.byteLength
    for (let id = 2; id < 30_002; id++) {
      h.requestHeaders(id, [[':path', '/']])
      h.finish(id)
    }
    // A late answer for a finished stream is ignored, not a trap.
    h.callResponse(h.callouts[0]!.token, [[':status', '200']])
    expect(h.continued).toEqual([])
    expect(h.exports.memory.buffer.byteLength).toBeLessThanOrEqual(before + 4 * 65536)
  })

  it('collects after root-context callbacks that allocate, with no stream ever ending', async () => {
    // json-echo parses and re-serializes its configuration on every proxy_on_configure: tens
    // of KiB of garbage per call, and no proxy_on_delete ever runs.
    const h = await AbiHarness.load((await buildFilter({ entry: fixture('json-echo') })).wasm)
    const config = { items: Array.from({ length: 300 }, (_, i) => ({ id: i, name: `item-${i}`, tags: ['a', 'b', 'c'] })) }
    expect(h.configure(config)).toBe(true)
    const before = h.exports.memory.buffer.byteLength
    for (let i = 0; i < 1_000; i++) expect(h.configure(config)).toBe(true)
    expect(h.exports.memory.buffer.byteLength).toBeLessThanOrEqual(before + 8 * 65536)
  })
})

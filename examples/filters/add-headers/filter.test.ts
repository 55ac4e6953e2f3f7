import { beforeAll, describe, expect, it } from 'vitest'
import { AbiHarness } from '../../../sdk-as/test/abi-harness.ts'
import { buildExamples } from '../build.js'

let wasm: Uint8Array
beforeAll(async () => {
  wasm = (await buildExamples(['add-headers']))['add-headers']!
})

const config = {
  request: { add: { 'X-Added': '1' }, set: { 'x-env': 'prod' }, remove: ['X-Internal'] },
  response: { add: { 'x-served-by': 'omnirelay' }, remove: ['server'] },
}

describe('add-headers on the ABI harness', () => {
  it('edits request and response headers from config', async () => {
    const h = await AbiHarness.load(wasm)
    expect(h.configure(config)).toBe(true)
    const action = h.requestHeaders(2, [[':path', '/'], ['x-internal', 'secret'], ['x-env', 'dev'], ['x-env', 'test']])
    expect(action).toBe(0)
    expect(h.streams.get(2)!.request).toEqual([[':path', '/'], ['x-env', 'prod'], ['x-added', '1']])
    expect(h.responseHeaders(2, [[':status', '200'], ['server', 'nginx']])).toBe(0)
    expect(h.streams.get(2)!.response).toEqual([[':status', '200'], ['x-served-by', 'omnirelay']])
    h.finish(2)
  })

  it('refuses configuration that is not a JSON object', async () => {
    const h = await AbiHarness.load(wasm)
    expect(h.configure('{"request": ')).toBe(false)
    const h2 = await AbiHarness.load(wasm)
    expect(h2.configure('[1,2]')).toBe(false)
  })

  it('does nothing without configuration', async () => {
    const h = await AbiHarness.load(wasm)
    expect(h.configure('')).toBe(true)
    h.requestHeaders(2, [[':path', '/a']])
    expect(h.streams.get(2)!.request).toEqual([[':path', '/a']])
  })
})

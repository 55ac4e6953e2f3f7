import { beforeAll, describe, expect, it } from 'vitest'
import { AbiHarness } from '../../../sdk-as/test/abi-harness.ts'
import { buildExamples } from '../build.js'

let wasm: Uint8Array
beforeAll(async () => {
  wasm = (await buildExamples(['path-deny']))['path-deny']!
})

async function configured(): Promise<AbiHarness> {
  const h = await AbiHarness.load(wasm)
  expect(h.configure({ prefixes: ['/admin', '/internal/'], status: 403, message: 'no "way"' })).toBe(true)
  return h
}

describe('path-deny on the ABI harness', () => {
  it('denies paths under a prefix with a JSON body, and counts them', async () => {
    const h = await configured()
    expect(h.requestHeaders(2, [[':path', '/admin/users?x=1']])).toBe(1)
    const reply = h.streams.get(2)!.reply!
    expect(reply.status).toBe(403)
    expect(reply.details).toBe('path_denied')
    expect(reply.headers).toEqual([['content-type', 'application/json']])
    expect(JSON.parse(reply.body)).toEqual({ error: 'path_denied', message: 'no "way"', path: '/admin/users' })
    expect(h.metrics).toEqual([{ type: 0, name: 'path_deny_denied_total', value: 1n }])
  })

  it.each(['/admin', '/admin/', '//admin', '/./admin', '/x/../admin', '/%61dmin/x', '/internal', '/internal/a'])('denies %s', async (path) => {
    const h = await configured()
    expect(h.requestHeaders(2, [[':path', path]])).toBe(1)
    expect(h.streams.get(2)!.reply?.status).toBe(403)
  })

  it.each(['/', '/administrator', '/public/admin', '/%2Fadmin', '/internals'])('lets %s through', async (path) => {
    const h = await configured()
    expect(h.requestHeaders(2, [[':path', path]])).toBe(0)
    expect(h.streams.get(2)!.reply).toBeUndefined()
  })

  it('refuses a status outside 200..599', async () => {
    const h = await AbiHarness.load(wasm)
    expect(h.configure({ prefixes: ['/a'], status: 99 })).toBe(false)
  })
})

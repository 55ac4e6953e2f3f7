import { beforeAll, describe, expect, it } from 'vitest'
import { AbiHarness } from '../../../sdk-as/test/abi-harness.ts'
import { buildExamples } from '../build.js'

let wasm: Uint8Array
beforeAll(async () => {
  wasm = (await buildExamples(['callout-auth']))['callout-auth']!
})

async function configured(cluster = 'auth'): Promise<AbiHarness> {
  const h = await AbiHarness.load(wasm)
  expect(h.configure({ cluster, path: '/check', timeoutMs: 1500, forwardHeaders: ['Authorization'], copyHeaders: ['x-user'] })).toBe(true)
  return h
}

describe('callout-auth on the ABI harness', () => {
  it('pauses, calls the auth cluster, then continues on 200 with copied headers', async () => {
    const h = await configured()
    expect(h.requestHeaders(2, [[':method', 'POST'], [':path', '/orders'], ['authorization', 'Bearer t']])).toBe(1)
    expect(h.callouts).toHaveLength(1)
    const call = h.callouts[0]!
    expect(call).toMatchObject({ cluster: 'auth', timeoutMs: 1500, context: 2 })
    expect(call.headers).toEqual([
      [':method', 'GET'], [':path', '/check'], [':authority', 'auth'],
      ['x-original-method', 'POST'], ['x-original-path', '/orders'], ['authorization', 'Bearer t'],
    ])
    h.callResponse(call.token, [[':status', '200'], ['x-user', 'alice']])
    expect(h.continued).toEqual([2 * 10 + 0]) // stream 2, HTTP_REQUEST
    expect(h.streams.get(2)!.request).toContainEqual(['x-user', 'alice'])
    expect(h.streams.get(2)!.reply).toBeUndefined()
  })

  it.each([
    ['403', 403, 'forbidden'],
    ['401', 401, 'unauthorized'],
    ['500', 401, 'unauthorized'],
  ])('answers auth status %s with %i', async (authStatus, status, error) => {
    const h = await configured()
    h.requestHeaders(2, [[':path', '/']])
    h.callResponse(h.callouts[0]!.token, [[':status', authStatus], ['www-authenticate', 'Bearer']])
    const reply = h.streams.get(2)!.reply!
    expect(reply.status).toBe(status)
    expect(JSON.parse(reply.body)).toEqual({ error })
    expect(h.continued).toEqual([])
  })

  it('answers 503 when the call fails or cannot start', async () => {
    const h = await configured()
    h.requestHeaders(2, [[':path', '/']])
    h.callResponse(h.callouts[0]!.token, [])
    expect(h.streams.get(2)!.reply?.status).toBe(503)

    const h2 = await configured('missing')
    expect(h2.requestHeaders(2, [[':path', '/']])).toBe(1)
    expect(h2.streams.get(2)!.reply).toMatchObject({ status: 503, details: 'auth_auth_unavailable' })
  })

  it('routes each answer to the request that asked', async () => {
    const h = await configured()
    h.requestHeaders(2, [[':path', '/a']])
    h.requestHeaders(3, [[':path', '/b']])
    h.callResponse(h.callouts[1]!.token, [[':status', '403']])
    h.callResponse(h.callouts[0]!.token, [[':status', '200']])
    expect(h.streams.get(3)!.reply?.status).toBe(403)
    expect(h.streams.get(2)!.reply).toBeUndefined()
    expect(h.continued).toEqual([20])
  })

  it('refuses config without a cluster', async () => {
    const h = await AbiHarness.load(wasm)
    expect(h.configure({ path: '/check' })).toBe(false)
  })
})

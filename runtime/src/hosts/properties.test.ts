import { describe, expect, it } from 'vitest'
import { HeaderMap } from '../pipeline/header-map.ts'
import { PipelineStream, createStreamInfo } from '../pipeline/stream.ts'
import { getProperty, int64, splitPropertyPath } from './properties.ts'

const stream = new PipelineStream({
  requestHeaders: HeaderMap.fromPairs([[':method', 'POST'], [':path', '/a/b?x=1'], [':authority', 'h.test'], ['user-agent', 'ua'], ['x-k', 'v']]),
  info: createStreamInfo({
    requestId: 'rid',
    downstreamRemoteAddress: '10.0.0.1',
    downstreamRemotePort: 5555,
    downstreamLocalAddress: '::1',
    downstreamLocalPort: 8080,
    epoch: 42,
    routeName: 'api',
    clusterName: 'app',
    upstreamAddress: '127.0.0.1:9000',
    tls: { version: 'TLSv1.3', sni: 'h.test', peerIdentity: 'spiffe://mesh/ns/a/sa/b', peerCertificatePresented: true },
  }),
})
const ctx = { stream, pluginName: 'authz', filterVersion: '1.2.3' }
const get = (p: string) => getProperty(splitPropertyPath(p), ctx)

describe('properties', () => {
  it('splits NUL- and dot-separated paths', () => {
    expect(splitPropertyPath('request\0headers\0x-k')).toEqual(['request', 'headers', 'x-k'])
    expect(splitPropertyPath('request.path')).toEqual(['request', 'path'])
    expect(splitPropertyPath(new TextEncoder().encode('source\0port\0'))).toEqual(['source', 'port'])
  })

  it('serves request attributes as Envoy does', () => {
    expect(get('request.path')).toBe('/a/b?x=1')
    expect(get('request.url_path')).toBe('/a/b')
    expect(get('request.query')).toBe('x=1')
    expect(get('request.method')).toBe('POST')
    expect(get('request.host')).toBe('h.test')
    expect(get('request.useragent')).toBe('ua')
    expect(get('request\0headers\0X-K')).toBe('v')
    expect(get('request.id')).toBe('rid')
    expect(get('request.time')).toHaveLength(8)
  })

  it('encodes ints as little-endian int64 and booleans as one byte', () => {
    expect(get('source.port')).toEqual(int64(5555))
    expect(get('source.address')).toBe('10.0.0.1:5555')
    expect(get('destination.address')).toBe('[::1]:8080')
    expect(get('upstream.port')).toEqual(int64(9000))
    expect(get('connection.mtls')).toEqual(Uint8Array.of(1))
    expect(get('connection.requested_server_name')).toBe('h.test')
  })

  it('serves OmniRelay attributes and plugin facts; unknown paths are undefined', () => {
    expect(get('omnirelay.route')).toBe('api')
    expect(get('omnirelay.epoch')).toEqual(int64(42))
    expect(get('omnirelay.peer_identity')).toBe('spiffe://mesh/ns/a/sa/b')
    expect(get('omnirelay.filter_version')).toBe('1.2.3')
    expect(get('plugin_name')).toBe('authz')
    expect(get('xds.route_name')).toBe('api')
    expect(get('nope.nothing')).toBeUndefined()
    expect(get('response.code')).toBeUndefined()
    expect(getProperty(['plugin_name'], { stream: undefined, pluginName: 'p' })).toBe('p')
    expect(getProperty(['request', 'path'], { stream: undefined, pluginName: 'p' })).toBeUndefined()
    expect(getProperty(['omnirelay', 'epoch'], { stream: undefined, pluginName: 'p', epoch: 3 })).toEqual(int64(3))
  })

  it('serializes header maps the proxy-wasm way', () => {
    const v = get('request.headers') as Uint8Array
    expect(new DataView(v.buffer).getUint32(0, true)).toBe(5)
  })
})

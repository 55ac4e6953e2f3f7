import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadXdsBootstrap, parseXdsBootstrap } from './bootstrap.ts'
import { XdsClientErrorCode } from './errors.ts'

const good = {
  xds_servers: [{ server_uri: '127.0.0.1:18000', channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
  node: { id: 'edge-1', cluster: 'edge', metadata: { 'meshkit.group': 'edge' }, locality: { zone: 'z1' } },
  omnirelay: { protocol: 'sotw', abis: ['proxy-wasm/0.2.1'], host_kinds: ['wasm'], client_features: ['f1'] },
}

describe('xDS bootstrap', () => {
  it('reads the gRPC layout plus OmniRelay settings', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'xds-boot-'))
    const file = path.join(dir, 'bootstrap.json')
    await writeFile(file, JSON.stringify(good))
    expect(await loadXdsBootstrap(file)).toEqual({
      address: '127.0.0.1:18000',
      protocol: 'sotw',
      node: { id: 'edge-1', cluster: 'edge', metadata: { 'meshkit.group': 'edge' }, locality: { region: '', zone: 'z1', subZone: '' }, clientFeatures: ['f1'] },
      capabilities: { abis: ['proxy-wasm/0.2.1'], hostKinds: ['wasm'] },
    })
  })

  it.each([
    [{ ...good, xds_servers: [] }, 'xds_servers'],
    [{ ...good, node: { cluster: 'x' } }, 'node.id'],
    [{ ...good, omnirelay: { protocol: 'rest' } }, 'omnirelay.protocol'],
    [{ ...good, xds_servers: [{ server_uri: 'x:1', channel_creds: [{ type: 'tls' }] }] }, 'xds_servers[0].channel_creds'],
  ])('refuses a malformed bootstrap, naming the field (%#)', (json, field) => {
    expect(() => parseXdsBootstrap(json)).toThrow(expect.objectContaining({ code: XdsClientErrorCode.BootstrapInvalid, message: expect.stringMatching(new RegExp(`^${field.replace(/[[\].]/g, '\\$&')}`)) }))
  })

  it('reports a missing file with the stable code', async () => {
    await expect(loadXdsBootstrap('/nonexistent/bootstrap.json')).rejects.toMatchObject({ code: XdsClientErrorCode.BootstrapInvalid })
  })
})

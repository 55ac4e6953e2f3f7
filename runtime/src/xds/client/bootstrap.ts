/**
 * The xDS bootstrap file: where the control plane is and who this node is. The
 * layout is gRPC's (`xds_servers`, `node`), so one file serves OmniRelay and
 * grpc-js-xds; OmniRelay's own settings sit under `omnirelay`.
 *
 * @example
 * // bootstrap.json
 * // { "xds_servers": [{ "server_uri": "127.0.0.1:18000", "channel_creds": [{ "type": "insecure" }] }],
 * //   "node": { "id": "edge-1", "cluster": "edge", "metadata": { "meshkit.group": "edge" } },
 * //   "omnirelay": { "protocol": "delta", "abis": ["proxy-wasm/0.2.1"], "host_kinds": ["wasm", "quickjs"] } }
 * const boot = await loadXdsBootstrap('bootstrap.json')
 * const client = createXdsClient({ ...boot, onResources })
 */
import { readFile } from 'node:fs/promises'
import type { JsonValue } from '../proto/struct.ts'
import { XdsClientError, XdsClientErrorCode } from './errors.ts'
import type { XdsClientNode } from './xds-client.ts'

export interface XdsBootstrap {
  address: string
  node: XdsClientNode
  protocol: 'delta' | 'sotw'
  capabilities: { abis?: string[]; hostKinds?: string[] }
}

function fail(path: string, what: string): never {
  throw new XdsClientError(XdsClientErrorCode.BootstrapInvalid, `${path}: ${what}`)
}

function obj(v: unknown, path: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(path, 'must be an object')
  return v as Record<string, unknown>
}

function str(v: unknown, path: string, required = true): string | undefined {
  if (v === undefined && !required) return undefined
  if (typeof v !== 'string' || v === '') fail(path, 'must be a non-empty string')
  return v
}

function strings(v: unknown, path: string): string[] | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail(path, 'must be a list of strings')
  return v as string[]
}

export function parseXdsBootstrap(json: unknown): XdsBootstrap {
  const root = obj(json, '$')
  const servers = root.xds_servers
  if (!Array.isArray(servers) || servers.length === 0) fail('xds_servers', 'must list at least one server')
  const server = obj(servers[0], 'xds_servers[0]')
  const address = str(server.server_uri, 'xds_servers[0].server_uri')!
  const creds = server.channel_creds
  if (creds !== undefined) {
    if (!Array.isArray(creds)) fail('xds_servers[0].channel_creds', 'must be a list')
    // Only plaintext on loopback is implemented; mTLS comes with the identity work.
    if (!creds.some((c) => obj(c, 'xds_servers[0].channel_creds[]').type === 'insecure')) {
      fail('xds_servers[0].channel_creds', 'only {"type":"insecure"} is supported')
    }
  }
  const n = obj(root.node, 'node')
  const node: XdsClientNode = { id: str(n.id, 'node.id')! }
  const cluster = str(n.cluster, 'node.cluster', false)
  if (cluster !== undefined) node.cluster = cluster
  if (n.metadata !== undefined) node.metadata = obj(n.metadata, 'node.metadata') as Record<string, JsonValue>
  if (n.locality !== undefined) {
    const l = obj(n.locality, 'node.locality')
    node.locality = { region: String(l.region ?? ''), zone: String(l.zone ?? ''), subZone: String(l.sub_zone ?? '') }
  }
  const o = root.omnirelay === undefined ? {} : obj(root.omnirelay, 'omnirelay')
  const protocol = o.protocol ?? 'delta'
  if (protocol !== 'delta' && protocol !== 'sotw') fail('omnirelay.protocol', 'must be "delta" or "sotw"')
  const features = strings(o.client_features, 'omnirelay.client_features')
  if (features) node.clientFeatures = features
  const capabilities: XdsBootstrap['capabilities'] = {}
  const abis = strings(o.abis, 'omnirelay.abis')
  const hostKinds = strings(o.host_kinds, 'omnirelay.host_kinds')
  if (abis) capabilities.abis = abis
  if (hostKinds) capabilities.hostKinds = hostKinds
  return { address, node, protocol, capabilities }
}

export async function loadXdsBootstrap(file: string): Promise<XdsBootstrap> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    throw new XdsClientError(XdsClientErrorCode.BootstrapInvalid, `${file}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    throw new XdsClientError(XdsClientErrorCode.BootstrapInvalid, `${file}: not JSON (${(e as Error).message})`)
  }
  return parseXdsBootstrap(json)
}

/**
 * The protobuf definitions the xDS layer speaks: Envoy's published v3 API as
 * shipped inside the @grpc/grpc-js-xds npm package (never copied into this repo)
 * plus OmniRelay's own `omnirelay.v1` resources from runtime/proto.
 *
 * Loaded once per process (~150 ms, ~13 MB); everything else asks `protoRoot()`.
 *
 * @example
 * const Listener = protoRoot().lookupType('envoy.config.listener.v3.Listener')
 * const bytes = Listener.encode(Listener.fromObject({ name: 'edge' })).finish()
 */
// Importing proto-loader registers descriptor.proto & co. with protobufjs; the
// Envoy files import them (validate/annotations).
import '@grpc/proto-loader'
import protobuf from 'protobufjs'
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ENVOY_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
]
const OMNIRELAY_FILES = ['omnirelay/v1/resources.proto']

let root: protobuf.Root | undefined

/** Directories searched for imports, in order. */
export function protoIncludeDirs(): string[] {
  const require = createRequire(import.meta.url)
  const xdsPkg = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'))
  const deps = path.join(xdsPkg, 'deps')
  const own = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../proto')
  return [own, ...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d))]
}

export function protoRoot(): protobuf.Root {
  if (root !== undefined) return root
  const dirs = protoIncludeDirs()
  const r = new protobuf.Root()
  r.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target
    for (const dir of dirs) {
      const full = path.join(dir, target)
      if (existsSync(full)) return full
    }
    return protobuf.util.path.resolve(origin, target)
  }
  r.loadSync([...ENVOY_FILES, ...OMNIRELAY_FILES], { keepCase: true })
  r.resolveAll()
  root = r
  return r
}

const types = new Map<string, protobuf.Type>()

/** A message type by full name, e.g. `envoy.config.cluster.v3.Cluster`. */
export function protoType(fullName: string): protobuf.Type {
  let t = types.get(fullName)
  if (t === undefined) {
    t = protoRoot().lookupType(fullName)
    types.set(fullName, t)
  }
  return t
}

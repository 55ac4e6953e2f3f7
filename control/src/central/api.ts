/**
 * Central's config API: HTTP/JSON under /v1. Changes are validated before anything is
 * stored or pushed; a refusal is `422 {"error": {"code": "config_invalid", "issues": [{path, message}]}}`.
 *
 *   GET    /v1/health
 *   GET    /v1/groups                             PUT|GET|DELETE /v1/groups/{g}
 *   GET|PUT /v1/groups/{g}/config                 (the whole group config, atomically)
 *   GET|PUT /v1/groups/{g}/{kind}                 (a kind's whole list, in order)
 *   GET|PUT|DELETE /v1/groups/{g}/{kind}/{name}   kind: listeners, routes, clusters, filter-chains, splits
 *   GET    /v1/dataplanes                         GET /v1/dataplanes/{id}
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { ConfigError } from '@omnirelay/runtime/config/errors.ts'
import type { Central } from './central.ts'
import { CentralError, CentralErrorCode } from './errors.ts'
import { OBJECT_KINDS, type GroupConfig, type ObjectKind, type Spec } from './store.ts'

const MAX_BODY = 1 << 20
const KIND_PATHS: Record<string, ObjectKind> = {
  listeners: 'listeners',
  routes: 'routes',
  clusters: 'clusters',
  'filter-chains': 'filterChains',
  splits: 'splits',
}

type Json = Record<string, unknown>

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req) {
    size += (c as Buffer).length
    if (size > MAX_BODY) throw new CentralError(CentralErrorCode.BodyTooLarge, `body over ${MAX_BODY} bytes`)
    chunks.push(c as Buffer)
  }
  if (size === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new CentralError(CentralErrorCode.BadRequest, 'body is not JSON')
  }
}

function groupConfigOf(body: unknown): GroupConfig {
  if (!isObj(body)) throw new CentralError(CentralErrorCode.BadRequest, 'config must be an object')
  const cfg: GroupConfig = { listeners: [], routes: [], clusters: [], filterChains: [], splits: [] }
  for (const k of Object.keys(body)) {
    if (!(OBJECT_KINDS as readonly string[]).includes(k)) {
      throw new CentralError(CentralErrorCode.ConfigInvalid, 'invalid config', [{ path: k, message: `unknown field (expected one of: ${OBJECT_KINDS.join(', ')})` }])
    }
  }
  for (const k of OBJECT_KINDS) {
    const v = body[k]
    if (v === undefined) continue
    if (!Array.isArray(v)) throw new CentralError(CentralErrorCode.ConfigInvalid, 'invalid config', [{ path: k, message: 'must be a list' }])
    cfg[k] = v as Spec[]
  }
  return cfg
}

function selectorOf(body: Json): { selector?: Record<string, string>; priority?: number } {
  const out: { selector?: Record<string, string>; priority?: number } = {}
  if (body.selector !== undefined) {
    const s = body.selector
    if (!isObj(s) || Object.values(s).some((v) => typeof v !== 'string')) {
      throw new CentralError(CentralErrorCode.ConfigInvalid, 'invalid group', [{ path: 'selector', message: 'must map label names to string values' }])
    }
    out.selector = s as Record<string, string>
  }
  if (body.priority !== undefined) {
    if (!Number.isInteger(body.priority)) throw new CentralError(CentralErrorCode.ConfigInvalid, 'invalid group', [{ path: 'priority', message: 'must be an integer' }])
    out.priority = body.priority as number
  }
  return out
}

const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

/** The request handler (usable on any node:http server). */
export function createCentralHandler(central: Central): http.RequestListener {
  const route = async (method: string, parts: string[], req: http.IncomingMessage): Promise<[number, unknown]> => {
    const [v1, top, g, kindPath, name, ...extra] = parts
    if (v1 !== 'v1' || extra.length) throw new CentralError(CentralErrorCode.NotFound, 'no such path')
    const only = (...allowed: string[]) => {
      if (!allowed.includes(method)) throw new CentralError(CentralErrorCode.MethodNotAllowed, `${method} not allowed here`)
    }
    if (top === 'health' && g === undefined) {
      only('GET')
      return [200, { ok: true, epoch: central.epoch, groups: central.groups().length, dataPlanes: central.dataPlanes().length, xds: central.xdsAddress, registry: central.registryUrl }]
    }
    if (top === 'dataplanes') {
      only('GET')
      if (g === undefined) return [200, { dataPlanes: central.dataPlanes().map((dp) => ({ ...dataPlaneView(dp), withheld: central.withheldFrom(dp.id) })) }]
      const dp = central.directory.get(g)
      if (!dp || kindPath !== undefined) throw new CentralError(CentralErrorCode.NotFound, `no data plane "${g}"`)
      return [200, { ...dataPlaneView(dp), withheld: central.withheldFrom(dp.id), details: dp }]
    }
    if (top !== 'groups') throw new CentralError(CentralErrorCode.NotFound, 'no such path')
    if (g === undefined) {
      only('GET')
      return [200, { groups: central.groups() }]
    }
    if (kindPath === undefined) {
      only('GET', 'PUT', 'DELETE')
      if (method === 'GET') return [200, { ...central.group(g), config: central.config(g) }]
      if (method === 'DELETE') {
        central.deleteGroup(g)
        return [200, { deleted: g }]
      }
      if (!GROUP_NAME.test(g)) throw new CentralError(CentralErrorCode.BadRequest, `"${g}" is not a valid group name`)
      const body = await readJson(req)
      if (!isObj(body)) throw new CentralError(CentralErrorCode.BadRequest, 'body must be an object')
      for (const k of Object.keys(body)) {
        if (!['selector', 'priority', 'config'].includes(k)) {
          throw new CentralError(CentralErrorCode.ConfigInvalid, 'invalid group', [{ path: k, message: 'unknown field (expected one of: selector, priority, config)' }])
        }
      }
      const sel = selectorOf(body)
      const cfg = body.config === undefined ? undefined : groupConfigOf(body.config)
      return [200, central.change(g, (rec, current) => {
        if (sel.selector) rec.selector = sel.selector
        if (sel.priority !== undefined) rec.priority = sel.priority
        if (cfg) Object.assign(current, cfg)
      }, { create: true })]
    }
    if (kindPath === 'config') {
      only('GET', 'PUT')
      if (name !== undefined) throw new CentralError(CentralErrorCode.NotFound, 'no such path')
      if (method === 'GET') return [200, central.config(g)]
      const cfg = groupConfigOf(await readJson(req))
      return [200, central.change(g, (_rec, current) => Object.assign(current, cfg))]
    }
    const kind = KIND_PATHS[kindPath]
    if (!kind) throw new CentralError(CentralErrorCode.NotFound, `unknown kind "${kindPath}" (expected one of: ${Object.keys(KIND_PATHS).join(', ')})`)
    if (name === undefined) {
      only('GET', 'PUT')
      if (method === 'GET') return [200, { [kind]: central.config(g)[kind] }]
      const list = await readJson(req)
      if (!Array.isArray(list)) throw new CentralError(CentralErrorCode.ConfigInvalid, 'invalid config', [{ path: kind, message: 'must be a list' }])
      return [200, central.change(g, (_rec, current) => void (current[kind] = list as Spec[]))]
    }
    only('GET', 'PUT', 'DELETE')
    if (method === 'GET') {
      const spec = central.config(g)[kind].find((s) => s.name === name)
      if (!spec) throw new CentralError(CentralErrorCode.NotFound, `no ${kindPath} "${name}" in group "${g}"`)
      return [200, spec]
    }
    if (method === 'DELETE') {
      return [200, central.change(g, (_rec, current) => {
        const i = current[kind].findIndex((s) => s.name === name)
        if (i < 0) throw new CentralError(CentralErrorCode.NotFound, `no ${kindPath} "${name}" in group "${g}"`)
        current[kind].splice(i, 1)
      })]
    }
    const body = await readJson(req)
    if (!isObj(body)) throw new CentralError(CentralErrorCode.BadRequest, 'body must be an object')
    if (body.name !== undefined && body.name !== name) throw new CentralError(CentralErrorCode.NameMismatch, `body names "${String(body.name)}", path names "${name}"`)
    const spec = { ...body, name } as Spec
    return [200, central.change(g, (_rec, current) => {
      const i = current[kind].findIndex((s) => s.name === name)
      // Replacing keeps the position (routes match in order); a new object goes last.
      if (i >= 0) current[kind][i] = spec
      else current[kind].push(spec)
    })]
  }

  return (req, res) => {
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body) + '\n'
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    }
    let parts: string[]
    try {
      parts = (req.url ?? '/').split('?')[0]!.split('/').filter(Boolean).map(decodeURIComponent)
    } catch {
      return send(400, { error: { code: CentralErrorCode.BadRequest, message: 'bad path encoding' } })
    }
    route(req.method ?? 'GET', parts, req).then(
      ([status, body]) => send(status, body),
      (e: unknown) => {
        if (e instanceof CentralError) return send(e.status, { error: { code: e.code, message: e.message, ...(e.issues.length ? { issues: e.issues } : {}) } })
        if (e instanceof ConfigError) return send(422, { error: { code: CentralErrorCode.ConfigInvalid, message: 'invalid config', issues: e.issues } })
        central.log.error('central API request failed', { method: req.method, url: req.url, err: e })
        send(500, { error: { code: CentralErrorCode.Internal, message: 'internal error' } })
      },
    )
  }
}

/** The fleet view of one data plane: what operators look at first. */
function dataPlaneView(dp: ReturnType<Central['dataPlanes']>[number]) {
  return {
    id: dp.id,
    group: dp.group,
    labels: dp.labels,
    version: dp.userAgent,
    connected: dp.connected,
    epoch: dp.appliedEpoch,
    state: dp.state,
    refusedEpoch: dp.refusedEpoch,
    lastError: dp.lastError,
    lastSeen: dp.lastSeen,
  }
}

export function listen(server: http.Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((ok, fail) => {
    server.once('error', fail)
    server.listen(port, host, () => {
      server.off('error', fail)
      ok(server.address() as AddressInfo)
    })
  })
}

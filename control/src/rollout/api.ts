/**
 * Rollouts over central's HTTP/JSON API:
 *
 *   GET  /v1/rollouts                      POST /v1/rollouts            (start; body: RolloutSpec)
 *   GET  /v1/rollouts/{id}                 GET  /v1/rollouts/{id}/history
 *   POST /v1/rollouts/{id}/{pause|resume|promote|abort}   (body: {"reason"?})
 *   POST /v1/rollbacks                     (body: {group, chain, filter, version, reason?})
 *   GET  /v1/kills                         POST /v1/kills {scope, target, reason?}
 *   DELETE /v1/kills/{scope}/{target}
 *   GET  /v1/telemetry/compare?filter=&a=&b=&window=60   (seconds)
 *
 * Errors: `{"error": {"code", "message"}}` with the code's status.
 */
import type http from 'node:http'
import type { TelemetryStore } from '../telemetry/store.ts'
import { compareVersions } from '../telemetry/query.ts'
import { RolloutError, RolloutErrorCode } from './errors.ts'
import type { RolloutManager } from './manager.ts'
import type { KillEntry, RolloutSpec } from './types.ts'

const MAX_BODY = 1 << 16

async function body(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const c of req) {
    size += (c as Buffer).length
    if (size > MAX_BODY) throw new RolloutError(RolloutErrorCode.Invalid, 'body too large')
    chunks.push(c as Buffer)
  }
  if (!size) return {}
  let v: unknown
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new RolloutError(RolloutErrorCode.Invalid, 'body is not JSON')
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RolloutError(RolloutErrorCode.Invalid, 'body must be an object')
  return v as Record<string, unknown>
}

function send(res: http.ServerResponse, status: number, v: unknown): void {
  const b = JSON.stringify(v)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) })
  res.end(b)
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)

/**
 * Returns a handler that answers the rollout paths and returns false for any other path.
 * @example
 * const rollouts = createRolloutApi(manager, telemetryStore)
 * http.createServer(async (req, res) => (await rollouts(req, res)) || centralHandler(req, res))
 */
export function createRolloutApi(manager: RolloutManager, telemetry?: TelemetryStore): (req: http.IncomingMessage, res: http.ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const p = url.pathname.split('/').filter(Boolean).map(decodeURIComponent)
    if (p[0] !== 'v1' || !['rollouts', 'rollbacks', 'kills', 'telemetry'].includes(p[1] ?? '')) return false
    const m = req.method ?? 'GET'
    try {
      if (p[1] === 'rollouts') {
        if (p.length === 2 && m === 'GET') return send(res, 200, { rollouts: manager.list() }), true
        if (p.length === 2 && m === 'POST') return send(res, 201, await manager.start((await body(req)) as unknown as RolloutSpec)), true
        const id = p[2]!
        if (p.length === 3 && m === 'GET') return send(res, 200, manager.status(id)), true
        if (p.length === 4 && p[3] === 'history' && m === 'GET') return send(res, 200, { history: manager.history(id) }), true
        if (p.length === 4 && m === 'POST') {
          const reason = str((await body(req)).reason)
          const act = p[3]
          if (act === 'pause') return send(res, 200, await manager.pause(id, reason)), true
          if (act === 'resume') return send(res, 200, await manager.resume(id, reason)), true
          if (act === 'promote') return send(res, 200, await manager.promote(id, reason)), true
          if (act === 'abort') return send(res, 200, await manager.abort(id, reason)), true
        }
      } else if (p[1] === 'rollbacks' && p.length === 2 && m === 'POST') {
        const b = await body(req)
        const [g, c, f, v] = [str(b.group), str(b.chain), str(b.filter), str(b.version)]
        if (!g || !c || !f || !v) throw new RolloutError(RolloutErrorCode.Invalid, 'group, chain, filter and version are required')
        return send(res, 200, await manager.rollbackTo(g, c, f, v, str(b.reason))), true
      } else if (p[1] === 'kills') {
        if (p.length === 2 && m === 'GET') return send(res, 200, { kills: manager.kills() }), true
        if (p.length === 2 && m === 'POST') {
          const b = await body(req)
          return send(res, 200, await manager.kill(str(b.scope) as KillEntry['scope'], str(b.target) ?? '', str(b.reason))), true
        }
        if (p.length === 4 && m === 'DELETE') return send(res, 200, await manager.unkill(p[2] as KillEntry['scope'], p[3]!)), true
      } else if (p[1] === 'telemetry' && p[2] === 'compare' && m === 'GET' && telemetry) {
        const q = url.searchParams
        const [filter, a, b] = [q.get('filter'), q.get('a'), q.get('b')]
        const window = Number(q.get('window') ?? 60)
        if (!filter || !a || !b || !(window > 0)) throw new RolloutError(RolloutErrorCode.Invalid, 'filter, a, b and a positive window (seconds) are required')
        return send(res, 200, compareVersions(telemetry, { filter, versions: [a, b], windowMs: window * 1000 }, Date.now())), true
      }
      send(res, 404, { error: { code: 'not_found', message: `no route ${m} ${url.pathname}` } })
    } catch (e) {
      if (e instanceof RolloutError) send(res, e.status, { error: { code: e.code, message: e.message } })
      else send(res, 500, { error: { code: 'internal', message: (e as Error).message } })
    }
    return true
  }
}

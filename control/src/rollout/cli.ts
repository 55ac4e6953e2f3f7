/**
 * `meshkit rollout start|status|pause|resume|promote|abort|history|rollback` and
 * `meshkit kill|unkill`: a client of central's rollout API. Tables by default, `--json`
 * for scripts. Exit codes: 0 ok, 1 refused/failed (the API's error code is printed), 2 usage.
 */
import { parseArgs } from 'node:util'
import type { HistoryEntry, KillEntry, Rollout } from './types.ts'

export const ROLLOUT_HELP = `meshkit rollout — move a filter version by traffic steps

  meshkit rollout start --group G --chain C --filter F --from NAME@A --to NAME@B
                        [--steps 1,5,25,50,100] [--interval 60s] [--sticky-header H | --sticky-cookie K]
                        [--min-requests 50] [--failure-limit 1] [--max-error-increase 0.01]
                        [--max-p99-ratio 1.5] [--max-trap-increase 0.001] [--max-fuel-ratio 2]
  meshkit rollout status [ID]           all rollouts, or one
  meshkit rollout pause|resume|promote|abort ID [--reason TEXT]
  meshkit rollout history ID            every state change, its epoch, weight and reason
  meshkit rollout rollback --group G --chain C --filter F --version NAME@V
  meshkit kill --scope filter|bundle|signer TARGET [--reason TEXT]
  meshkit unkill --scope filter|bundle|signer TARGET
  meshkit kill --list

Common: --url URL (default $MESHKIT_URL or http://127.0.0.1:7080), --json
`

interface Io {
  out: (s: string) => void
  err: (s: string) => void
}

const STD: Io = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) }

class Usage extends Error {}

function duration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s)
  if (!m) throw new Usage(`bad duration "${s}" (e.g. 500ms, 30s, 2m)`)
  const n = Number(m[1])
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000)
}

function num(s: string | undefined, name: string): number | undefined {
  if (s === undefined) return undefined
  const n = Number(s)
  if (!Number.isFinite(n)) throw new Usage(`--${name} must be a number`)
  return n
}

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ')).join('\n') + '\n'
}

const pct = (bp: number) => `${bp / 100}%`
const when = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19)

function rolloutRows(rs: Rollout[]): string {
  return table([
    ['ID', 'GROUP', 'SLOT', 'FROM', 'TO', 'STATE', 'STEP', 'WEIGHT(B)', 'REASON'],
    ...rs.map((r) => [r.id, r.group, `${r.chain}.${r.filter}`, r.from, r.to, r.state, `${r.step + 1}/${r.steps.length}`, pct(r.weightB), r.waiting ?? r.reason]),
  ])
}

function historyRows(h: HistoryEntry[]): string {
  return table([['TIME', 'EPOCH', 'EVENT', 'STATE', 'WEIGHT(B)', 'REASON'], ...h.map((e) => [when(e.atMs), e.epoch ? String(e.epoch) : '-', e.event, e.state, pct(e.weightB), e.reason])])
}

function killRows(k: KillEntry[]): string {
  return table([['SCOPE', 'TARGET', 'EPOCH', 'SINCE', 'REASON'], ...k.map((x) => [x.scope, x.target, String(x.epoch), when(x.atMs), x.reason ?? ''])])
}

/**
 * @example
 * process.exitCode = await rolloutCli(['rollout', 'status', '--json'])
 */
export async function rolloutCli(argv: string[], io: Io = STD, env: Record<string, string | undefined> = process.env): Promise<number> {
  const [cmd, ...rest] = argv
  let values: Record<string, string | boolean | undefined>
  let positionals: string[]
  try {
    ;({ values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: {
        url: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        group: { type: 'string' },
        chain: { type: 'string' },
        filter: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        version: { type: 'string' },
        steps: { type: 'string' },
        interval: { type: 'string' },
        'sticky-header': { type: 'string' },
        'sticky-cookie': { type: 'string' },
        'min-requests': { type: 'string' },
        'failure-limit': { type: 'string' },
        'max-error-increase': { type: 'string' },
        'max-p99-ratio': { type: 'string' },
        'max-trap-increase': { type: 'string' },
        'max-fuel-ratio': { type: 'string' },
        reason: { type: 'string' },
        scope: { type: 'string' },
        list: { type: 'boolean' },
      },
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] })
  } catch (e) {
    io.err(`${(e as Error).message}\n\n${ROLLOUT_HELP}`)
    return 2
  }
  if (values.help) {
    io.out(ROLLOUT_HELP)
    return 0
  }
  const base = ((values.url as string | undefined) ?? env.MESHKIT_URL ?? 'http://127.0.0.1:7080').replace(/\/$/, '')
  const json = values.json === true
  const s = (k: string) => values[k] as string | undefined
  const call = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    let res: Response
    try {
      res = await fetch(`${base}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) })
    } catch (e) {
      throw Object.assign(new Error(`cannot reach central at ${base}: ${(e as Error).message}`), { code: 'central_unreachable' })
    }
    const v = (await res.json()) as { error?: { code: string; message: string } }
    if (!res.ok) throw Object.assign(new Error(v.error?.message ?? `HTTP ${res.status}`), { code: v.error?.code ?? `http_${res.status}` })
    return v
  }
  const print = (v: unknown, text: () => string) => io.out(json ? `${JSON.stringify(v, null, 2)}\n` : text())
  try {
    if (cmd === 'kill' || cmd === 'unkill') {
      if (values.list) {
        const v = (await call('GET', '/v1/kills')) as { kills: KillEntry[] }
        return print(v, () => killRows(v.kills)), 0
      }
      const scope = s('scope')
      const target = positionals[0]
      if (!scope || !target) throw new Usage(`${cmd} needs --scope and a TARGET`)
      const v = (cmd === 'kill' ? await call('POST', '/v1/kills', { scope, target, reason: s('reason') }) : await call('DELETE', `/v1/kills/${encodeURIComponent(scope)}/${encodeURIComponent(target)}`)) as { epoch: number; kills: KillEntry[] }
      return print(v, () => `epoch ${v.epoch}\n${killRows(v.kills)}`), 0
    }
    if (cmd !== 'rollout') throw new Usage(`unknown command ${cmd}`)
    const [sub, id] = positionals
    switch (sub) {
      case 'start': {
        for (const k of ['group', 'chain', 'filter', 'from', 'to']) if (!s(k)) throw new Usage(`rollout start needs --${k}`)
        const analysis: Record<string, number> = {}
        const map: [string, string][] = [
          ['min-requests', 'minRequests'],
          ['failure-limit', 'failureLimit'],
          ['max-error-increase', 'maxErrorRateIncrease'],
          ['max-p99-ratio', 'maxP99Ratio'],
          ['max-trap-increase', 'maxTrapRateIncrease'],
          ['max-fuel-ratio', 'maxFuelRatio'],
        ]
        for (const [flag, key] of map) {
          const n = num(s(flag), flag)
          if (n !== undefined) analysis[key] = n
        }
        const spec: Record<string, unknown> = { group: s('group'), chain: s('chain'), filter: s('filter'), from: s('from'), to: s('to'), analysis }
        if (s('steps')) spec.steps = s('steps')!.split(',').map((x) => num(x.trim(), 'steps'))
        if (s('interval')) spec.intervalMs = duration(s('interval')!)
        if (s('sticky-header')) spec.stickyHeader = s('sticky-header')
        if (s('sticky-cookie')) spec.stickyCookie = s('sticky-cookie')
        const r = (await call('POST', '/v1/rollouts', spec)) as Rollout
        return print(r, () => rolloutRows([r])), 0
      }
      case 'status': {
        if (id) {
          const r = (await call('GET', `/v1/rollouts/${encodeURIComponent(id)}`)) as Rollout
          return print(r, () => rolloutRows([r])), 0
        }
        const v = (await call('GET', '/v1/rollouts')) as { rollouts: Rollout[] }
        return print(v, () => rolloutRows(v.rollouts)), 0
      }
      case 'pause':
      case 'resume':
      case 'promote':
      case 'abort': {
        if (!id) throw new Usage(`rollout ${sub} needs an ID`)
        const r = (await call('POST', `/v1/rollouts/${encodeURIComponent(id)}/${sub}`, s('reason') ? { reason: s('reason') } : {})) as Rollout
        return print(r, () => rolloutRows([r])), 0
      }
      case 'history': {
        if (!id) throw new Usage('rollout history needs an ID')
        const v = (await call('GET', `/v1/rollouts/${encodeURIComponent(id)}/history`)) as { history: HistoryEntry[] }
        return print(v, () => historyRows(v.history)), 0
      }
      case 'rollback': {
        for (const k of ['group', 'chain', 'filter', 'version']) if (!s(k)) throw new Usage(`rollout rollback needs --${k}`)
        const v = (await call('POST', '/v1/rollbacks', { group: s('group'), chain: s('chain'), filter: s('filter'), version: s('version'), reason: s('reason') })) as { epoch: number; version: string }
        return print(v, () => `${v.version} at epoch ${v.epoch}\n`), 0
      }
      default:
        throw new Usage(`unknown rollout command ${sub ?? ''}`)
    }
  } catch (e) {
    if (e instanceof Usage) {
      io.err(`${e.message}\n\n${ROLLOUT_HELP}`)
      return 2
    }
    const err = e as Error & { code?: string }
    if (json) io.out(`${JSON.stringify({ error: { code: err.code ?? 'failed', message: err.message } })}\n`)
    else io.err(`${err.code ? `${err.code}: ` : ''}${err.message}\n`)
    return 1
  }
}

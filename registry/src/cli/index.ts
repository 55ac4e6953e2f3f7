/**
 * `meshkit registry …`: serve a registry, or inspect and administer one — over HTTP
 * (`--url`, `--token` / MESHKIT_REGISTRY_URL, MESHKIT_REGISTRY_TOKEN) or directly on its data
 * directory (`--data`, as the local operator). Every listing prints a table, or JSON with `--json`.
 *
 *   meshkit registry --data DIR [--trust-policy FILE] [--port 7070] [--host 127.0.0.1] [--read-access open|token]
 *   meshkit registry ls [NAME] [--query Q] [--capability C] [--kind K]
 *   meshkit registry show NAME@VERSION
 *   meshkit registry publish FILE
 *   meshkit registry yank NAME@VERSION [--reason TEXT]
 *   meshkit registry revoke (--digest D | --signer KEY_ID) [--reason TEXT]
 *   meshkit registry revocations
 *   meshkit registry audit [--after N] [--limit N]
 *   meshkit registry audit verify
 *   meshkit registry token add ID [--names 'acme-*,tools-*'] [--scopes read,publish]   (--data only)
 *   meshkit registry token ls | token rm ID                                            (--data only)
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { existsSync } from 'node:fs'
import { Registry } from '../registry.ts'
import { serve } from '../api/server.ts'
import { LOCAL_OPERATOR, generateToken, tokenRecord, SCOPES, type Scope } from '../auth/tokens.ts'
import { AuditAction, type AuditEntry, type AuditVerifyResult } from '../audit/audit-log.ts'
import { RegistryError } from '../errors.ts'
import { publishBundle, registryRequest, RegistryClientError } from '../client/publish.ts'
import type { BundleRecord, NameSummary, Revocation } from '../storage/metadata.ts'
import { short, table } from './table.ts'

const USAGE = `usage: meshkit registry --data DIR [--trust-policy FILE] [--port N] [--host H] [--read-access open|token]
       meshkit registry ls [NAME] | show NAME@VERSION | publish FILE | yank NAME@VERSION [--reason R]
       meshkit registry revoke (--digest D | --signer KEY_ID) [--reason R] | revocations
       meshkit registry audit [verify] | token add ID [--names P,..] [--scopes S,..] | token ls | token rm ID
target: --data DIR (local) or --url URL [--token T]  (env MESHKIT_REGISTRY_URL, MESHKIT_REGISTRY_TOKEN); --json for JSON output
`

type Out = { write(s: string): unknown }

export interface CommandIo {
  stdout?: Out
  stderr?: Out
  env?: NodeJS.ProcessEnv
  /** Resolves when a served registry should stop (default: SIGINT/SIGTERM). */
  stopSignal?: Promise<void>
  /** Told the URL once a served registry listens. */
  onListening?: (url: string) => void
}

class UsageError extends Error {}

/** The operations the CLI needs, over HTTP or on the data directory. */
interface Target {
  list(f: { query?: string; capability?: string; kind?: string }): Promise<NameSummary[]>
  versions(name: string): Promise<(BundleRecord & { revoked: Revocation | null })[]>
  get(name: string, version: string): Promise<BundleRecord & { revoked: Revocation | null }>
  yank(name: string, version: string, reason: string): Promise<BundleRecord>
  revoke(t: { digest: string } | { signer: string }, reason: string): Promise<Revocation>
  revocations(): Promise<{ serial: number; entries: Revocation[] }>
  audit(after: number, limit: number): Promise<AuditEntry[]>
  verify(): Promise<AuditVerifyResult>
  close(): void
}

function httpTarget(url: string, token: string | undefined): Target {
  const enc = (s: string): string => encodeURIComponent(s)
  const req = <T>(method: string, path: string, body?: object): Promise<T> => registryRequest<T>(url, method, path, { token, body })
  return {
    list: (f) => {
      const q = new URLSearchParams()
      if (f.query) q.set('q', f.query)
      if (f.capability) q.set('capability', f.capability)
      if (f.kind) q.set('kind', f.kind)
      return req<{ bundles: NameSummary[] }>('GET', `/v1/bundles?${q}`).then((r) => r.bundles)
    },
    versions: (name) => req<{ versions: (BundleRecord & { revoked: Revocation | null })[] }>('GET', `/v1/bundles/${enc(name)}`).then((r) => r.versions),
    get: (name, version) => req('GET', `/v1/bundles/${enc(name)}/${enc(version)}`),
    yank: (name, version, reason) => req('POST', `/v1/bundles/${enc(name)}/${enc(version)}/yank`, { reason }),
    revoke: (t, reason) => req('POST', '/v1/revocations', { ...t, reason }),
    revocations: () => req('GET', '/v1/revocations'),
    audit: (after, limit) => req<{ entries: AuditEntry[] }>('GET', `/v1/audit?after=${after}&limit=${limit}`).then((r) => r.entries),
    verify: () => req('GET', '/v1/audit/verify'),
    close: () => {},
  }
}

function localTarget(reg: Registry): Target {
  const who = LOCAL_OPERATOR
  return {
    list: async (f) => reg.list(f),
    versions: async (name) => reg.versions(name),
    get: async (name, version) => reg.get(name, version),
    yank: async (name, version, reason) => reg.yank(name, version, reason, who),
    revoke: async (t, reason) => reg.revoke(t, reason, who),
    revocations: async () => reg.revocations(),
    audit: async (after, limit) => reg.auditEntries(after, limit, who),
    verify: async () => reg.verifyAudit(who),
    close: () => reg.close(),
  }
}

const EMPTY_POLICY = { version: 1, publishers: [] }

function splitRef(ref: string | undefined): [string, string] {
  const at = ref ? ref.lastIndexOf('@') : -1
  if (!ref || at <= 0) throw new UsageError(`expected NAME@VERSION, got "${ref ?? ''}"`)
  return [ref.slice(0, at), ref.slice(at + 1)]
}

/**
 * Runs one `meshkit registry` command. `argv` is what follows `registry` on the command line.
 * Resolves with the exit code: 0 ok, 1 refused/failed (including a broken audit chain), 2 usage.
 *
 * @example
 * process.exitCode = await registryCommand(process.argv.slice(2))
 */
export async function registryCommand(argv: string[], io: CommandIo = {}): Promise<number> {
  const out = io.stdout ?? process.stdout
  const err = io.stderr ?? process.stderr
  const env = io.env ?? process.env
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        data: { type: 'string' },
        url: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean', default: false },
        'trust-policy': { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'read-access': { type: 'string' },
        query: { type: 'string' },
        capability: { type: 'string' },
        kind: { type: 'string' },
        reason: { type: 'string' },
        digest: { type: 'string' },
        signer: { type: 'string' },
        after: { type: 'string' },
        limit: { type: 'string' },
        names: { type: 'string' },
        scopes: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (e) {
    err.write(`${(e as Error).message}\n${USAGE}`)
    return 2
  }
  const o = parsed.values
  const [cmd = 'serve', ...args] = parsed.positionals
  if (o.help) {
    out.write(USAGE)
    return 0
  }
  const json = o.json === true
  const print = (value: unknown, text: () => string): void => {
    out.write(json ? JSON.stringify(value, null, 2) + '\n' : text())
  }

  let target: Target | undefined
  try {
    if (cmd === 'serve') return await runServe(o, io, out)
    if (cmd === 'publish') {
      const url = o.url ?? env.MESHKIT_REGISTRY_URL
      const token = o.token ?? env.MESHKIT_REGISTRY_TOKEN
      if (!url || !token || !args[0]) throw new UsageError('publish needs FILE, --url and --token')
      const r = await publishBundle(url, token, args[0])
      print(r, () => `${r.result} ${r.bundle.name}@${r.bundle.version} ${r.bundle.digest}\n`)
      return 0
    }
    if (cmd === 'token') return await runToken(args, o, print)

    target = await openTarget(o, env)
    switch (cmd) {
      case 'ls': {
        if (args[0]) {
          const vs = await target.versions(args[0])
          print(vs, () => table(['VERSION', 'DIGEST', 'SIGNER', 'PUBLISHED', 'STATE'], vs.map((v) => [v.version, short(v.digest), v.signer.keyId, v.publishedAt, stateOf(v)])))
        } else {
          const f: { query?: string; capability?: string; kind?: string } = {}
          if (o.query) f.query = o.query
          if (o.capability) f.capability = o.capability
          if (o.kind) f.kind = o.kind
          const names = await target.list(f)
          print(names, () => table(['NAME', 'KIND', 'LATEST', 'VERSIONS', 'DESCRIPTION'], names.map((n) => [n.name, n.kind, n.latest, n.versions, n.description])))
        }
        return 0
      }
      case 'show': {
        const [name, version] = splitRef(args[0])
        const b = await target.get(name, version)
        print(b, () =>
          table(['FIELD', 'VALUE'], [
            ['name', b.name],
            ['version', b.version],
            ['kind', b.kind],
            ['abi', b.manifest.abi],
            ['digest', b.digest],
            ['manifest', b.manifestDigest],
            ['instrumented', b.instrumentedDigest],
            ['size', b.size],
            ['capabilities', b.capabilities.join(',') || '-'],
            ['signer', `${b.signer.keyId} (${b.signer.publisher})`],
            ['published', `${b.publishedAt} by ${b.publishedBy}`],
            ['state', stateOf(b)],
          ]),
        )
        return 0
      }
      case 'yank': {
        const [name, version] = splitRef(args[0])
        const b = await target.yank(name, version, o.reason ?? '')
        print(b, () => `yanked ${b.name}@${b.version}\n`)
        return 0
      }
      case 'revoke': {
        if ((o.digest === undefined) === (o.signer === undefined)) throw new UsageError('revoke needs exactly one of --digest, --signer')
        const r = await target.revoke(o.digest !== undefined ? { digest: o.digest } : { signer: o.signer as string }, o.reason ?? '')
        print(r, () => `revoked ${r.kind} ${r.target}\n`)
        return 0
      }
      case 'revocations': {
        const r = await target.revocations()
        print(r, () => table(['KIND', 'TARGET', 'REASON', 'BY', 'AT'], r.entries.map((e) => [e.kind, e.target, e.reason, e.revokedBy, e.revokedAt])))
        return 0
      }
      case 'audit': {
        if (args[0] === 'verify') {
          const v = await target.verify()
          print(v, () =>
            v.ok
              ? `audit log ok: ${v.entries} entries, head ${v.head.hash.slice(0, 16)}\n`
              : `audit log BROKEN at entry ${v.problem?.seq}: ${v.problem?.reason} (${v.entries} entries check out before it)\n`,
          )
          return v.ok ? 0 : 1
        }
        if (args[0] !== undefined) throw new UsageError(`unknown audit command "${args[0]}"`)
        const entries = await target.audit(Number(o.after ?? 0) || 0, Number(o.limit ?? 100) || 100)
        print(entries, () => table(['SEQ', 'AT', 'ACTOR', 'ACTION', 'SUBJECT', 'DIGEST', 'RESULT'], entries.map((e) => [e.seq, e.at, e.actor, e.action, e.subject, short(e.digest), e.result])))
        return 0
      }
      default:
        throw new UsageError(`unknown command "${cmd}"`)
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err.write(`${e.message}\n${USAGE}`)
      return 2
    }
    if (e instanceof RegistryError || e instanceof RegistryClientError) {
      const step = (e as { step?: string }).step
      if (json) out.write(JSON.stringify({ error: { code: e.code, step, message: e.message } }, null, 2) + '\n')
      else err.write(`refused: ${step ? `[${step}] ` : ''}${e.code}: ${e.message}\n`)
      return 1
    }
    err.write(`error: ${(e as Error)?.message ?? String(e)}\n`)
    return 1
  } finally {
    target?.close()
  }

  async function runToken(rest: string[], o2: typeof o, pr: typeof print): Promise<number> {
    if (!o2.data) throw new UsageError('token commands work on the data directory: give --data')
    const reg = await Registry.open({ dataDir: o2.data, trustPolicy: EMPTY_POLICY, collectGarbage: false, admission: { smoke: { runner: 'abi' } } })
    try {
      const [sub, id] = rest
      if (sub === 'add' && id) {
        const token = generateToken()
        const scopes = (o2.scopes ?? 'read,publish').split(',').map((s) => s.trim()).filter(Boolean)
        for (const s of scopes) if (!(SCOPES as readonly string[]).includes(s)) throw new UsageError(`unknown scope "${s}"`)
        const rec = tokenRecord({ id, token, names: (o2.names ?? '*').split(',').map((s) => s.trim()).filter(Boolean), scopes: scopes as Scope[] })
        reg.store.db.transaction(() => {
          reg.store.addToken(rec)
          reg.audit.append({ actor: LOCAL_OPERATOR.actor, action: AuditAction.TokenAdd, subject: id, result: 'ok', detail: { names: rec.names, scopes: rec.scopes } })
        }).immediate()
        pr({ id, token, names: rec.names, scopes: rec.scopes }, () => `token ${id} (shown once, store it now):\n${token}\n`)
        return 0
      }
      if (sub === 'rm' && id) {
        const removed = reg.store.db.transaction(() => {
          const r = reg.store.removeToken(id)
          reg.audit.append({ actor: LOCAL_OPERATOR.actor, action: AuditAction.TokenRemove, subject: id, result: r ? 'ok' : 'absent' })
          return r
        }).immediate()
        pr({ id, removed }, () => (removed ? `removed token ${id}\n` : `no token ${id}\n`))
        return removed ? 0 : 1
      }
      if (sub === 'ls') {
        const ts = reg.store.tokens()
        pr(ts, () => table(['ID', 'NAMES', 'SCOPES', 'CREATED'], ts.map((t) => [t.id, t.names.join(','), t.scopes.join(','), t.createdAt])))
        return 0
      }
      throw new UsageError('token add ID | token ls | token rm ID')
    } finally {
      reg.close()
    }
  }
}

async function openTarget(o: { data?: string; url?: string; token?: string }, env: NodeJS.ProcessEnv): Promise<Target> {
  if (o.data) {
    return localTarget(await Registry.open({ dataDir: o.data, trustPolicy: EMPTY_POLICY, collectGarbage: false, admission: { smoke: { runner: 'abi' } } }))
  }
  const url = o.url ?? env.MESHKIT_REGISTRY_URL
  if (!url) throw new UsageError('give --data DIR or --url URL')
  return httpTarget(url, o.token ?? env.MESHKIT_REGISTRY_TOKEN)
}

function stateOf(b: { yanked: { reason: string } | null; revoked?: Revocation | null }): string {
  if (b.revoked) return `revoked (${b.revoked.kind})`
  if (b.yanked) return `yanked${b.yanked.reason ? `: ${b.yanked.reason}` : ''}`
  return 'live'
}

async function runServe(
  o: { data?: string; 'trust-policy'?: string; port?: string; host?: string; 'read-access'?: string },
  io: CommandIo,
  out: Out,
): Promise<number> {
  if (!o.data) throw new UsageError('serving needs --data DIR')
  const policyFile = o['trust-policy'] ?? ['trust-policy.yaml', 'trust-policy.json'].map((f) => join(o.data as string, f)).find((f) => existsSync(f))
  if (!policyFile) throw new UsageError('give --trust-policy FILE (or put trust-policy.yaml in the data directory)')
  const readAccess = o['read-access'] ?? 'open'
  if (readAccess !== 'open' && readAccess !== 'token') throw new UsageError('--read-access is open or token')
  const port = o.port === undefined ? 7070 : Number(o.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`bad --port ${o.port}`)
  const reg = await Registry.open({ dataDir: o.data, trustPolicy: policyFile, readAccess })
  const running = await serve(reg, port, o.host ?? '127.0.0.1')
  reg.warm()
  out.write(`meshkit registry listening on ${running.url} (data ${o.data})\n`)
  io.onListening?.(running.url)
  await (io.stopSignal ??
    new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve())
      process.once('SIGTERM', () => resolve())
    }))
  await running.close()
  return 0
}

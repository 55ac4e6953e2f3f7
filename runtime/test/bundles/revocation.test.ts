// Revocation end to end: a real MeshKit registry and a real proxy on loopback. Bundles are
// published with `omnirelay bundle publish`, served, then revoked in the registry: within the
// poll interval the proxy stops running them (their failure policy applies), explicit configs
// naming them are refused with the code, the list survives the registry going away and a restart.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRegistry, type RunningRegistry } from '@meshkit/registry'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createInProcPipeline, startProxy, type ProxyHandle } from '../../src/index.ts'
import { bundleCommand } from '../../src/bundles/cli.ts'
import { buildFiltersOnce } from '../../src/cli/build-check.ts'
import { validateConfig } from '../../src/config/validate.ts'
import { BundleErrorCode } from '../../src/bundles/errors.ts'
import { silentLogger } from '../../src/observability/logger.ts'
import { json, request, startUpstream, type Upstream } from '../helpers/servers.ts'
import { newKey, signedWasmBundle, tagFilter, tempDir } from './fixtures.ts'

const PUBLISH = 'mkr_revocation_test_publish_00001'
const ADMIN = 'mkr_revocation_test_admin_0000001'

async function waitFor(cond: () => Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await cond()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

async function metricsText(p: ProxyHandle): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${p.adminAddress()!.port}/metrics`)
  return res.text()
}

function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

function buildIssues(e: unknown): string {
  return JSON.stringify((e as { issues?: unknown }).issues ?? (e as Error).message)
}

async function revoke(url: string, body: object): Promise<void> {
  const res = await fetch(`${url}/v1/revocations`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` } })
  expect(res.status).toBe(201)
}

describe('revocation: registry -> proxy', () => {
  let reg: RunningRegistry | undefined
  let regDir: { dir: string; cleanup: () => Promise<void> }
  let node: { dir: string; cleanup: () => Promise<void> }
  let up: Upstream
  let proxy: ProxyHandle | undefined
  const acme = newKey('ed25519', 'acme-rev-1')
  const other = newKey('ed25519', 'other-rev-1')
  const digests: Record<string, string> = {}

  const config = (filters: string[], url = reg!.url) => ({
    listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
    admin: { address: '127.0.0.1', port: 0 },
    accessLog: 'off',
    trustPolicy: 'policy.json',
    registry: { url, pollIntervalMs: 100, revocationsFile: 'state/revocations.json' },
    clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
    filters: [
      { name: 'closed', kind: 'wasm', failurePolicy: 'fail-closed', bundle: { path: 'a.orb', digest: digests.a }, capabilities: ['headers:read', 'headers:write', 'log'] },
      { name: 'open', kind: 'wasm', failurePolicy: 'fail-open', bundle: { path: 'b.orb', digest: digests.b }, capabilities: ['headers:read', 'headers:write', 'log'] },
      { name: 'third', kind: 'wasm', failurePolicy: 'fail-closed', bundle: { path: 'c.orb', digest: digests.c }, capabilities: ['headers:read', 'headers:write', 'log'] },
      { name: 'fourth', kind: 'wasm', failurePolicy: 'fail-closed', bundle: { path: 'd.orb', digest: digests.d }, capabilities: ['headers:read', 'headers:write', 'log'] },
    ].filter((f) => filters.includes(f.name)),
    routes: [
      ...(filters.includes('closed') ? [{ name: 'closed', match: { prefix: '/closed' }, cluster: 'app', filters: ['closed'] }] : []),
      ...(filters.includes('open') ? [{ name: 'open', match: { prefix: '/open' }, cluster: 'app', filters: ['open'] }] : []),
      ...(filters.includes('third') ? [{ name: 'third', match: { prefix: '/third' }, cluster: 'app', filters: ['third'] }] : []),
      ...(filters.includes('fourth') ? [{ name: 'fourth', match: { prefix: '/fourth' }, cluster: 'app', filters: ['fourth'] }] : []),
    ],
  })

  beforeAll(async () => {
    regDir = await tempDir()
    node = await tempDir()
    up = await startUpstream()
    const policy = {
      version: 1,
      publishers: [
        { name: 'acme', keys: [{ keyId: acme.keyId, publicKey: acme.publicKeyPem }] },
        { name: 'other', keys: [{ keyId: other.keyId, publicKey: other.publicKeyPem }] },
      ],
    }
    await writeFile(join(node.dir, 'policy.json'), JSON.stringify(policy))
    reg = await startRegistry({
      dataDir: regDir.dir,
      trustPolicy: policy,
      tokens: [
        { id: 'ci', token: PUBLISH, names: ['*'], scopes: ['read', 'publish'] },
        { id: 'ops', token: ADMIN, scopes: ['admin'] },
      ],
      admission: { smoke: { runner: 'abi' } },
      admissionIsolation: 'inline',
    })
    const files = {
      a: await signedWasmBundle(acme, await tagFilter('aa'), { name: 'tag-a', version: '1.0.0' }),
      b: await signedWasmBundle(other, await tagFilter('bb'), { name: 'tag-b', version: '1.0.0' }),
      c: await signedWasmBundle(acme, await tagFilter('cc'), { name: 'tag-c', version: '1.0.0' }),
      d: await signedWasmBundle(acme, await tagFilter('dd'), { name: 'tag-d', version: '1.0.0' }),
    }
    for (const [k, bytes] of Object.entries(files)) {
      await writeFile(join(node.dir, `${k}.orb`), bytes)
      const lines: string[] = []
      const code = await bundleCommand(['publish', join(node.dir, `${k}.orb`), '--registry', reg.url, '--token', PUBLISH, '--json'], { log: (s) => lines.push(s), err: (s) => lines.push(s) })
      expect(code).toBe(0)
      const r = JSON.parse(lines[0]!)
      expect(r).toMatchObject({ ok: true, result: 'admitted', name: `tag-${k}` })
      digests[k] = r.digest
    }
  })
  afterAll(async () => {
    await proxy?.close()
    await reg?.close()
    await up?.close()
    await node?.cleanup()
    await regDir?.cleanup()
  })

  it('serves the published bundles', async () => {
    proxy = await startProxy(config(['closed', 'open', 'third']), { baseDir: node.dir, log: silentLogger })
    const port = proxy.address('main').port
    expect(json(await request(port, { path: '/closed' })).headers['x-bundle']).toBe('aa')
    expect(json(await request(port, { path: '/open' })).headers['x-bundle']).toBe('bb')
    const m = await metricsText(proxy)
    expect(metric(m, 'omnirelay_bundles_revoked{kind="digest"}')).toBe(0)
    expect(metric(m, 'omnirelay_revocations_age_seconds')).toBeGreaterThanOrEqual(0)
  })

  it('a revoked bundle stops running within the poll interval: fail-closed answers 503', async () => {
    const epoch = proxy!.epoch
    await revoke(reg!.url, { digest: digests.a, reason: 'cve' })
    const port = proxy!.address('main').port
    await waitFor(async () => (await request(port, { path: '/closed' })).status === 503, 'the revoked filter to stop', 3_000)
    const r = await request(port, { path: '/closed' })
    expect(json(r)).toMatchObject({ error: 'filter_failed', code: 'unavailable', filter: 'closed' })
    expect(proxy!.epoch).toBe(epoch + 1)
    // The rest of the config keeps running its code.
    expect(json(await request(port, { path: '/open' })).headers['x-bundle']).toBe('bb')
    expect(json(await request(port, { path: '/third' })).headers['x-bundle']).toBe('cc')
    const m = await metricsText(proxy!)
    expect(metric(m, 'omnirelay_bundles_revoked{kind="digest"}')).toBe(1)
    expect(metric(m, 'omnirelay_filters_revoked')).toBe(1)
    expect(metric(m, 'omnirelay_revocation_polls_total{result="changed"}')).toBeGreaterThanOrEqual(1)
  })

  it('a reload that still references the revoked bundle is refused with bundle_revoked', async () => {
    const epoch = proxy!.epoch
    const err = await proxy!.reload(config(['closed', 'open', 'third'])).then(() => undefined, (e: unknown) => e)
    expect((err as { code?: string }).code).toBe('config_filter_build')
    expect(buildIssues(err)).toContain(`${BundleErrorCode.BundleRevoked}:`)
    expect(proxy!.epoch).toBe(epoch)
    expect((await request(proxy!.address('main').port, { path: '/closed' })).status).toBe(503)
  })

  it('a revoked signer: its fail-open filter is skipped, and a reload naming it is refused with signer_revoked', async () => {
    await revoke(reg!.url, { signer: other.keyId, reason: 'key leaked' })
    const port = proxy!.address('main').port
    await waitFor(async () => json(await request(port, { path: '/open' })).headers['x-bundle'] === undefined, 'the signer revocation', 3_000)
    const r = await request(port, { path: '/open' })
    expect(r.status).toBe(200)
    const m = await metricsText(proxy!)
    expect(metric(m, 'omnirelay_filters_revoked')).toBe(2)
    expect(metric(m, 'omnirelay_bundles_revoked{kind="signer"}')).toBe(1)
    expect(metric(m, 'omnirelay_filter_fail_open_total{filter="open"}')).toBeGreaterThanOrEqual(1)
    const err = await proxy!.reload(config(['open', 'third'])).then(() => undefined, (e: unknown) => e)
    expect(buildIssues(err)).toContain(`${BundleErrorCode.SignerRevoked}:`)
    // A config without the revoked filters applies and runs everything in it.
    await proxy!.reload(config(['third']))
    expect(metric(await metricsText(proxy!), 'omnirelay_filters_revoked')).toBe(0)
    expect(json(await request(port, { path: '/third' })).headers['x-bundle']).toBe('cc')
  })

  it('in-proc: a pipeline naming a revoked bundle is refused; a running one stops running a bundle revoked later', async () => {
    const err = await createInProcPipeline(config(['closed']), { baseDir: node.dir, log: silentLogger }).then(
      async (p) => (await p.close(), undefined),
      (e: unknown) => e,
    )
    expect(buildIssues(err)).toContain(`${BundleErrorCode.BundleRevoked}:`)
    const omni = await createInProcPipeline(config(['fourth']), { baseDir: node.dir, log: silentLogger })
    const server = http.createServer(omni.wrap((req, res) => res.end(String(req.headers['x-bundle']))))
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
    try {
      const port = (server.address() as AddressInfo).port
      expect((await request(port, { path: '/fourth' })).body).toBe('dd')
      await revoke(reg!.url, { digest: digests.d, reason: 'cve' })
      await waitFor(async () => (await request(port, { path: '/fourth' })).status === 503, 'the in-proc filter to stop', 3_000)
      expect(omni.epoch).toBe(2)
    } finally {
      server.closeAllConnections()
      await new Promise((ok) => server.close(ok))
      await omni.close()
    }
  })

  it('the registry unreachable: the last list is kept, failures counted', async () => {
    const url = reg!.url
    await reg!.close()
    reg = undefined
    await waitFor(async () => (metric(await metricsText(proxy!), 'omnirelay_revocation_polls_total{result="failed"}') ?? 0) >= 2, 'failed polls', 3_000)
    const err = await proxy!.reload(config(['closed', 'third'], url)).then(() => undefined, (e: unknown) => e)
    expect(buildIssues(err)).toContain(`${BundleErrorCode.BundleRevoked}:`)
    const m = await metricsText(proxy!)
    expect(metric(m, 'omnirelay_bundles_revoked{kind="digest"}')).toBe(2)
    expect(metric(m, 'omnirelay_bundles_revoked{kind="signer"}')).toBe(1)
  })

  it('a restart without the registry refuses what the persisted list revoked', async () => {
    const url = `http://127.0.0.1:${(await startUpstream().then(async (u) => (await u.close(), u.port)))}`
    await proxy!.close()
    proxy = undefined
    const saved = JSON.parse(await readFile(join(node.dir, 'state/revocations.json'), 'utf8'))
    expect(saved).toMatchObject({ digests: [digests.a, digests.d].sort(), signers: [other.keyId] })
    const err = await startProxy(config(['closed', 'third'], url), { baseDir: node.dir, log: silentLogger }).then(
      async (p) => (await p.close(), undefined),
      (e: unknown) => e,
    )
    expect((err as { code?: string }).code).toBe('config_filter_build')
    expect(buildIssues(err)).toContain(`${BundleErrorCode.BundleRevoked}:`)
    // `omnirelay validate --build` says the same from the persisted list.
    const checked = await buildFiltersOnce(validateConfig(config(['closed'], url), node.dir)).then(() => undefined, (e: unknown) => e)
    expect(buildIssues(checked)).toContain(`${BundleErrorCode.BundleRevoked}:`)
    proxy = await startProxy(config(['third'], url), { baseDir: node.dir, log: silentLogger })
    expect(json(await request(proxy.address('main').port, { path: '/third' })).headers['x-bundle']).toBe('cc')
    expect(metric(await metricsText(proxy), 'omnirelay_bundles_revoked{kind="digest"}')).toBe(2)
  })
})

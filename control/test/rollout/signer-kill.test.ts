/**
 * Kill by signer on a real data plane: central publishes the signer rule itself, and
 * OmniRelay matches it against each filter's verified signer whenever it builds. So a bundle
 * of that signer that did not exist when the kill was made, attached later to a route, never
 * runs either; nor does a whole-config PUT or a new group lose the rule. A filter of another
 * signer keeps running throughout. Real central, registry,
 * OmniRelay over xDS, HTTP through the proxy.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { publishBundle } from '@meshkit/registry'
import { buildBundle, generateSigningKey, readSigningKey, signBundle, type SigningKey } from '@omnirelay/runtime/bundles/index.ts'
import type { XdsProxy } from '@omnirelay/runtime/xds/apply/index.ts'
import { startCentralWithRollouts, type RunningCentralWithRollouts } from '../../src/rollout/serve.ts'
import { api, converged, dataPlane, echoUpstream, tempDir, TOKEN, until } from '../central/helpers.ts'

const BUILD = join(dirname(fileURLToPath(import.meta.url)), '../../../examples/bundles/build')
const CAPS: ('headers:read' | 'headers:write')[] = ['headers:read', 'headers:write']

let central: RunningCentralWithRollouts
let dp: XdsProxy
let port = 0
let dir = ''
let devKey: SigningKey
const cleanup: (() => Promise<void>)[] = []

/** Builds, signs and publishes a JS filter that sets `header: value` on the request. */
async function publishFilter(name: string, version: string, header: string, key: SigningKey): Promise<string> {
  const d = join(dir, `${name}-${version}`)
  await mkdir(d)
  await writeFile(join(d, 'filter.js'), `export function onRequestHeaders(req) { req.headers.set('${header}', '${version}') }`)
  const built = await buildBundle({ source: join(d, 'filter.js'), name, version, sourceUrl: undefined, capabilities: CAPS })
  await writeFile(join(d, `${name}.orb`), await signBundle(built.file, key))
  await publishBundle(central.registryUrl, TOKEN, join(d, `${name}.orb`))
  return `${name}@${version}`
}

async function get(path: string): Promise<{ status: number; guard?: string; audit?: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`)
  const text = await res.text()
  if (res.status !== 200) return { status: res.status }
  const h = (JSON.parse(text) as { headers: Record<string, string> }).headers
  return { status: res.status, ...(h['x-guard'] ? { guard: h['x-guard'] } : {}), ...(h['x-audit'] ? { audit: h['x-audit'] } : {}) }
}

const killsOf = (group: string): string[] =>
  (central.central.config(group).splits as { name: string; targets: { variant: string }[] }[]).filter((s) => s.name.startsWith('kill:')).map((s) => s.targets[0]!.variant)

const filter = (name: string, bundle: string, failurePolicy: string) => ({ name, bundle, failurePolicy, capabilities: CAPS })

// Chains first, then routes (a route may only name a chain that exists); splits (the kill rules) stay.
async function setGroup(routes: unknown[], filterChains: unknown[]): Promise<void> {
  for (const [kind, list] of [['filter-chains', filterChains], ['routes', routes]] as const) {
    const put = await api(central as never, 'PUT', `/v1/groups/edge/${kind}`, list)
    expect(put.status, JSON.stringify(put.body)).toBe(200)
  }
  await converged(central as never, 'edge-1', central.central.group('edge').epoch)
}

let upstream = 0
let policy = ''

function startCentral(): Promise<RunningCentralWithRollouts> {
  return startCentralWithRollouts({
    dataDir: join(dir, 'central'),
    trustPolicy: policy,
    tokens: [{ id: 'ci', token: TOKEN, scopes: ['read', 'publish', 'admin'] }],
    registry: { admissionIsolation: 'inline' },
    tickMs: 50,
  })
}

beforeAll(async () => {
  const tmp = await tempDir()
  cleanup.push(tmp.cleanup)
  dir = tmp.dir
  devKey = await readSigningKey(join(BUILD, 'dev-publisher.key.json'))
  // Two publishers: the example dev key (the one killed) and another team's key (never killed).
  const other = generateSigningKey('ed25519', 'other-key')
  await writeFile(join(dir, 'other.pub.pem'), other.publicKeyPem)
  policy = join(dir, 'trust-policy.yaml')
  await writeFile(
    policy,
    [
      'version: 1',
      'publishers:',
      '  - name: examples-dev',
      `    keys: [{ keyId: dev-publisher, publicKeyFile: ${JSON.stringify(join(BUILD, 'dev-publisher.pub.pem'))} }]`,
      '    kinds: [wasm, quickjs]',
      '    names: ["*"]',
      '  - name: other-team',
      '    keys: [{ keyId: other-key, publicKeyFile: other.pub.pem }]',
      '    kinds: [wasm, quickjs]',
      '    names: ["*"]',
      '',
    ].join('\n'),
  )
  central = await startCentral()
  // Through `central`, so a restarted one is the one closed.
  cleanup.push(() => central.close())
  await publishFilter('guard', '1.0.0', 'x-guard', devKey)
  await publishFilter('audit', '1.0.0', 'x-audit', other)
  const up = await echoUpstream()
  cleanup.push(up.close)
  upstream = up.port
  const dpDir = await tempDir()
  cleanup.push(dpDir.cleanup)
  await api(central as never, 'PUT', '/v1/groups/edge', {
    selector: { role: 'edge' },
    config: {
      listeners: [{ name: 'edge', address: '127.0.0.1', port: 0 }],
      clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upstream}`] }],
      routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app', filterChain: 'main' }],
      filterChains: [{ name: 'main', filters: [filter('guard', 'guard@1.0.0', 'fail-closed')] }],
    },
  })
  dp = await dataPlane(central.xdsAddress, dpDir.dir, 'edge-1', {
    telemetry: false,
    local: { trustPolicy: policy, accessLog: 'off', logLevel: 'error', admin: { address: '127.0.0.1', port: 0 } },
  })
  cleanup.push(() => dp.close())
  await dp.serving
  port = dp.proxy!.address('edge').port
  expect(await get('/x')).toEqual({ status: 200, guard: '1.0.0' })
}, 120_000)

afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

describe('kill by signer on a real data plane', () => {
  it('covers the signer’s bundles present and attached later, spares other signers, and unkill restores them', async () => {
    // Another signer's filter on a route of its own, before the kill.
    const routes = [
      { name: 'audit', match: { prefix: '/audit/' }, cluster: 'app', filterChain: 'audited' },
      { name: 'app', match: { prefix: '/' }, cluster: 'app', filterChain: 'main' },
    ]
    const chains = [
      { name: 'main', filters: [filter('guard', 'guard@1.0.0', 'fail-closed')] },
      { name: 'audited', filters: [filter('audit', 'audit@1.0.0', 'fail-closed')] },
    ]
    await setGroup(routes, chains)
    expect(await get('/audit/a')).toEqual({ status: 200, audit: '1.0.0' })

    const k = await api(central as never, 'POST', '/v1/kills', { scope: 'signer', target: 'dev-publisher', reason: 'key leaked' })
    expect(k.status, JSON.stringify(k.body)).toBe(200)
    // The rule travels as is, not as a list of that signer's bundles of today.
    expect(killsOf('edge')).toEqual(['signer=dev-publisher'])
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    // fail-closed: 503; the other signer's filter still runs.
    expect(await get('/k')).toEqual({ status: 503 })
    expect(await get('/audit/k')).toEqual({ status: 200, audit: '1.0.0' })

    // A version of the killed signer that did not exist at kill time, attached to a new route
    // (fail-open: skipped, so the request passes without its header: it never ran).
    const fresh = await publishFilter('guard', '2.0.0', 'x-guard', devKey)
    const later = [{ name: 'fresh', match: { prefix: '/fresh/' }, cluster: 'app', filterChain: 'fresh' }, ...routes]
    const laterChains = [...chains, { name: 'fresh', filters: [filter('guard', fresh, 'fail-open'), filter('audit', 'audit@1.0.0', 'fail-closed')] }]
    await setGroup(later, laterChains)
    for (let i = 0; i < 10; i++) {
      expect(await get(`/fresh/${i}`)).toEqual({ status: 200, audit: '1.0.0' })
      expect(await get(`/k/${i}`)).toEqual({ status: 503 })
    }
    // And by publisher name as well as key id: the same rule under the publisher's name.
    expect((await api(central as never, 'DELETE', '/v1/kills/signer/dev-publisher')).status).toBe(200)
    expect((await api(central as never, 'POST', '/v1/kills', { scope: 'signer', target: 'examples-dev' })).status).toBe(200)
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    expect(await get('/fresh/p')).toEqual({ status: 200, audit: '1.0.0' })
    expect(await get('/k/p')).toEqual({ status: 503 })

    // A whole-config PUT replaces the splits list too, yet the kill stays; a group created now has it.
    const whole = await api(central as never, 'PUT', '/v1/groups/edge/config', {
      listeners: [{ name: 'edge', address: '127.0.0.1', port: 0 }],
      clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upstream}`] }],
      routes: later,
      filterChains: laterChains,
    })
    expect(whole.status, JSON.stringify(whole.body)).toBe(200)
    expect(killsOf('edge')).toEqual(['signer=examples-dev'])
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    expect(await get('/k/w')).toEqual({ status: 503 })
    expect(await get('/fresh/w')).toEqual({ status: 200, audit: '1.0.0' })
    const created = await api(central as never, 'PUT', '/v1/groups/late', { selector: { role: 'late' }, config: {
      listeners: [{ name: 'edge', address: '127.0.0.1', port: 0 }],
      clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upstream}`] }],
      routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app' }],
    } })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    expect(killsOf('late')).toEqual(['signer=examples-dev'])

    expect((await api(central as never, 'DELETE', '/v1/kills/signer/examples-dev')).status).toBe(200)
    await until(async () => ((await get('/k')).status === 200 ? true : undefined), 5000, 'unkill')
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    for (let i = 0; i < 10; i++) {
      expect(await get(`/fresh/u${i}`)).toEqual({ status: 200, guard: '2.0.0', audit: '1.0.0' })
      expect(await get(`/u${i}`)).toEqual({ status: 200, guard: '1.0.0' })
      expect(await get(`/audit/u${i}`)).toEqual({ status: 200, audit: '1.0.0' })
    }
    expect(killsOf('late')).toEqual([])
  }, 60_000)

  it('a restarted central keeps the stored kill rules in every later change', async () => {
    expect((await api(central as never, 'POST', '/v1/kills', { scope: 'signer', target: 'dev-publisher' })).status).toBe(200)
    await central.close()
    central = await startCentral()
    const whole = await api(central as never, 'PUT', '/v1/groups/edge/config', {
      listeners: [{ name: 'edge', address: '127.0.0.1', port: 0 }],
      clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upstream}`] }],
      routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app', filterChain: 'main' }],
      filterChains: [{ name: 'main', filters: [filter('guard', 'guard@2.0.0', 'fail-closed')] }],
    })
    expect(whole.status, JSON.stringify(whole.body)).toBe(200)
    expect(killsOf('edge')).toEqual(['signer=dev-publisher'])
    expect((await api(central as never, 'DELETE', '/v1/kills/signer/dev-publisher')).status).toBe(200)
    expect(killsOf('edge')).toEqual([])
  }, 30_000)
})

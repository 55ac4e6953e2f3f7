/**
 * Test fixtures: proxy-wasm modules compiled from WAT (wabt), real bundles signed with the
 * runtime's bundle code, temp data directories.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import wabtInit from 'wabt'
import { packBundle } from '@omnirelay/runtime/bundles/format.ts'
import { serializeManifest, type BundleManifest } from '@omnirelay/runtime/bundles/manifest.ts'
import { sha256Digest } from '@omnirelay/runtime/bundles/digest.ts'
import { generateSigningKey, type SigningKey } from '@omnirelay/runtime/bundles/keys.ts'
import { signBundle } from '@omnirelay/runtime/bundles/sign.ts'
import type { Capability, Quotas } from '@omnirelay/runtime/pipeline/filter.ts'

let wabt: Awaited<ReturnType<typeof wabtInit>> | undefined

export async function wat2wasm(text: string): Promise<Uint8Array> {
  wabt ??= await wabtInit()
  const mod = wabt.parseWat('filter.wat', text, { bulk_memory: true, mutable_globals: true, sign_extension: true })
  try {
    mod.validate()
    return new Uint8Array(mod.toBinary({}).buffer)
  } finally {
    mod.destroy()
  }
}

export interface FilterWat {
  /** Body of proxy_on_request_headers (must leave an i32 action on the stack). */
  onRequestHeaders?: string
  /** Extra import lines. */
  imports?: string
  /** Extra module fields (functions, data). */
  extra?: string
  memoryPages?: number
  abiExport?: boolean
}

/**
 * A small proxy-wasm 0.2.1 filter. By default it loops a little (so fuel is charged), adds a
 * response-side header and logs: it needs `log`, `headers:read`, `headers:write`.
 */
export function filterWat(o: FilterWat = {}): string {
  return `(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  ${o.imports ?? ''}
  (memory (export "memory") ${o.memoryPages ?? 2})
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 0) "x-smoke")
  (data (i32.const 16) "yes")
  (data (i32.const 32) "x-boom")
  ${o.abiExport === false ? '' : '(func (export "proxy_abi_version_0_2_1"))'}
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $i i32)
    ${o.onRequestHeaders ?? `(loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    (drop (call $log (i32.const 2) (i32.const 0) (i32.const 7)))
    (i32.const 0)`})
  (func (export "proxy_on_response_headers") (param $ctx i32) (param i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3)))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
  ${o.extra ?? ''}
)`
}

/** Request-header bodies for bad filters. */
export const BAD = {
  trap: '(unreachable)',
  spin: '(loop $l (br $l)) (i32.const 0)',
  /** Traps only when the request carries `x-boom` (so only a bundle's own samples trigger it). */
  trapOnBoom:
    '(if (i32.eqz (call $get (i32.const 0) (i32.const 32) (i32.const 6) (i32.const 4096) (i32.const 4100))) (then (unreachable))) (i32.const 0)',
  /** Copies 8 MiB per loop turn (needs 256 pages): the copies are charged by length, so fuel stops it within a few turns. */
  grind: '(loop $l (memory.copy (i32.const 0) (i32.const 8388608) (i32.const 8388608)) (br $l)) (i32.const 0)',
  /** Grows memory past any cap, then traps the way allocators do. */
  hog: '(loop $g (br_if $g (i32.ge_s (memory.grow (i32.const 1)) (i32.const 0)))) (unreachable)',
}

export interface BundleSpec {
  name?: string
  version?: string
  wasm: Uint8Array
  capabilities?: Capability[]
  quotas?: { default?: Quotas; maximum?: Quotas }
  /** Extra artifacts, e.g. `smoke/samples.json`. */
  extra?: Record<string, Uint8Array | string>
  description?: string
}

export const DEFAULT_CAPS: Capability[] = ['headers:read', 'headers:write', 'log']

/** An unsigned bundle file. */
export function makeBundle(s: BundleSpec): Uint8Array {
  const artifacts = new Map<string, Uint8Array>([['filter.wasm', s.wasm]])
  for (const [p, v] of Object.entries(s.extra ?? {})) artifacts.set(p, typeof v === 'string' ? new TextEncoder().encode(v) : v)
  const manifest: BundleManifest = {
    schemaVersion: 1,
    name: s.name ?? 'acme-filter',
    version: s.version ?? '1.0.0',
    kind: 'wasm',
    abi: 'proxy-wasm/0.2.1',
    entry: 'filter.wasm',
    artifacts: [...artifacts].map(([path, data]) => ({ path, digest: sha256Digest(data), size: data.length })),
    capabilities: s.capabilities ?? DEFAULT_CAPS,
    quotas: { default: s.quotas?.default ?? { fuel: 1_000_000, memoryBytes: 1 << 20 }, maximum: s.quotas?.maximum ?? { fuel: 10_000_000, memoryBytes: 4 << 20 } },
    tools: { wat: 'wabt' },
    ...(s.description ? { description: s.description } : {}),
  }
  return packBundle({ manifest: serializeManifest(manifest), artifacts })
}

/** An unsigned quickjs bundle (no Wasm: admission needs no binaryen, so child processes start fast). */
export function makeJsBundle(
  name: string,
  version = '1.0.0',
  o: { source?: string; capabilities?: Capability[]; quotas?: { default?: Quotas; maximum?: Quotas } } = {},
): Uint8Array {
  const js = new TextEncoder().encode(o.source ?? 'export function onRequestHeaders(req) { req.headers.get("user-agent") }\n')
  const manifest: BundleManifest = {
    schemaVersion: 1,
    name,
    version,
    kind: 'quickjs',
    abi: 'omnirelay-quickjs/1',
    entry: 'filter.js',
    artifacts: [{ path: 'filter.js', digest: sha256Digest(js), size: js.length }],
    capabilities: o.capabilities ?? ['headers:read'],
    quotas: { default: o.quotas?.default ?? {}, maximum: o.quotas?.maximum ?? {} },
    tools: {},
  }
  return packBundle({ manifest: serializeManifest(manifest), artifacts: new Map([['filter.js', js]]) })
}

export interface Fixture {
  key: SigningKey
  otherKey: SigningKey
  trustPolicy: object
  dir: string
  sign(bundle: Uint8Array, key?: SigningKey): Promise<Uint8Array>
  /** A signed bundle of the default filter (or of `wat`). */
  signed(spec?: Partial<BundleSpec> & { wat?: string }): Promise<Uint8Array>
  cleanup(): Promise<void>
}

let goodWasm: Uint8Array | undefined

/** `maxFuel`: the publisher's fuel ceiling in the trust policy (tests of slow filters raise it). */
export async function fixture(opts: { maxFuel?: number } = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'meshkit-registry-'))
  const key = generateSigningKey('ed25519', 'acme-2026')
  const otherKey = generateSigningKey('ed25519', 'mallory-1')
  const trustPolicy = {
    version: 1,
    publishers: [{ name: 'acme', keys: [{ keyId: key.keyId, publicKey: key.publicKeyPem }], names: ['acme-*', '@acme/*'], maxQuotas: { fuel: opts.maxFuel ?? 100_000_000 } }],
  }
  const sign = (b: Uint8Array, k: SigningKey = key) => signBundle(b, k)
  return {
    key,
    otherKey,
    trustPolicy,
    dir,
    sign,
    async signed(spec = {}) {
      const wasm = spec.wasm ?? (spec.wat ? await wat2wasm(spec.wat) : (goodWasm ??= await wat2wasm(filterWat())))
      return sign(makeBundle({ ...spec, wasm }))
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}

/** POSTs a bundle; returns status and parsed body. */
export async function post(url: string, body: Uint8Array, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/v1/bundles`, { method: 'POST', body, headers: token ? { authorization: `Bearer ${token}` } : {} })
  return { status: res.status, body: await res.json() }
}

export async function getJson(url: string, path: string, token?: string): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} })
  return { status: res.status, headers: res.headers, body: await res.json() }
}

export async function postJson(url: string, path: string, body: object, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url + path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } })
  return { status: res.status, body: await res.json() }
}

export const PUBLISH_TOKEN = 'mkr_test_publisher_token_0001'
export const ADMIN_TOKEN = 'mkr_test_admin_token_000000001'
export const OTHER_TOKEN = 'mkr_test_other_names_token_001'
export const TOKENS = [
  { id: 'ci', token: PUBLISH_TOKEN, names: ['acme-*', '@acme/*'], scopes: ['read', 'publish'] as ('read' | 'publish' | 'admin')[] },
  { id: 'ops', token: ADMIN_TOKEN, scopes: ['admin'] as ('read' | 'publish' | 'admin')[] },
  { id: 'other', token: OTHER_TOKEN, names: ['other-*'], scopes: ['publish'] as ('read' | 'publish' | 'admin')[] },
]

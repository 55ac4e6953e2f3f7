/** Test fixtures: small real proxy-wasm modules compiled from WAT, keys, policies, bundles. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import wabtInit from 'wabt'
import { expect } from 'vitest'
import { buildBundle } from '../../src/bundles/build.ts'
import { ArtifactError } from '../../src/bundles/errors.ts'
import { packBundle } from '../../src/bundles/format.ts'
import { generateSigningKey, type KeyAlgorithm, type SigningKey } from '../../src/bundles/keys.ts'
import { serializeManifest, type BundleManifest } from '../../src/bundles/manifest.ts'
import { signBundle } from '../../src/bundles/sign.ts'
import { sha256Digest } from '../../src/bundles/digest.ts'
import { compileTrustPolicy, type PublisherDocument, type TrustPolicy } from '../../src/bundles/trust-policy.ts'
import { writeFile } from 'node:fs/promises'

let wabt: Awaited<ReturnType<typeof wabtInit>> | undefined

/** Compiles WAT text to a Wasm binary. */
export async function wat(text: string): Promise<Uint8Array> {
  wabt ??= await wabtInit()
  const mod = wabt.parseWat('fixture.wat', text)
  try {
    return new Uint8Array(mod.toBinary({}).buffer)
  } finally {
    mod.destroy()
  }
}

const SIGNATURES: Record<string, string> = {
  proxy_log: '(param i32 i32 i32) (result i32)',
  proxy_get_header_map_value: '(param i32 i32 i32 i32 i32) (result i32)',
  proxy_add_header_map_value: '(param i32 i32 i32 i32 i32) (result i32)',
  proxy_send_local_response: '(param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)',
  proxy_http_call: '(param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)',
}

/** A minimal proxy-wasm 0.2.1 module importing the given hostcalls; `tag` varies its bytes. */
export async function proxyWasm(imports: (keyof typeof SIGNATURES)[], tag = 0): Promise<Uint8Array> {
  const lines = imports.map((n) => `(import "env" "${n}" (func $${n} ${SIGNATURES[n]}))`)
  return wat(`(module
    ${lines.join('\n    ')}
    (memory (export "memory") 1)
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "tag") (result i32) (i32.const ${tag})))`)
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'orb-test-'))
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) }
}

export function policyDoc(keys: { key: SigningKey; notBefore?: string; notAfter?: string }[], extra: Partial<PublisherDocument> = {}) {
  return {
    version: 1 as const,
    publishers: [
      {
        name: 'acme',
        keys: keys.map(({ key, notBefore, notAfter }) => ({ keyId: key.keyId, publicKey: key.publicKeyPem, notBefore, notAfter })),
        ...extra,
      },
    ],
  }
}

export async function policyFor(key: SigningKey, extra: Partial<PublisherDocument> = {}): Promise<TrustPolicy> {
  return compileTrustPolicy(policyDoc([{ key }], extra))
}

export function newKey(alg: KeyAlgorithm = 'ecdsa-p256', id = `k-${alg}`): SigningKey {
  return generateSigningKey(alg, id)
}

/** Builds and signs a wasm bundle from a module via the real builder (through a temp .wasm file). */
export async function signedWasmBundle(
  key: SigningKey,
  wasm: Uint8Array,
  fields: { name?: string; version?: string; capabilities?: BundleManifest['capabilities']; quotas?: BundleManifest['quotas']; configSchema?: Record<string, unknown> } = {},
): Promise<Uint8Array> {
  const { dir, cleanup } = await tempDir()
  try {
    const file = join(dir, 'm.wasm')
    await writeFile(file, wasm)
    const built = await buildBundle({ source: file, name: fields.name ?? 'demo', version: fields.version ?? '1.0.0', ...fields })
    return await signBundle(built.file, key)
  } finally {
    await cleanup()
  }
}

/** Packs a bundle from an arbitrary manifest object (may be inconsistent on purpose) and signs it. */
export async function signedFromManifest(key: SigningKey, manifest: BundleManifest, artifacts: Map<string, Uint8Array>): Promise<Uint8Array> {
  return signBundle(packBundle({ manifest: serializeManifest(manifest), artifacts }), key)
}

export function manifestFor(kind: BundleManifest['kind'], entry: string, bytes: Uint8Array, extra: Partial<BundleManifest> = {}): BundleManifest {
  return {
    schemaVersion: 1,
    name: 'demo',
    version: '1.0.0',
    kind,
    abi: kind === 'wasm' ? 'proxy-wasm/0.2.1' : kind === 'quickjs' ? 'omnirelay-quickjs/1' : 'omnirelay-native/1',
    entry,
    artifacts: [{ path: entry, digest: sha256Digest(bytes), size: bytes.length }],
    capabilities: [],
    quotas: { default: {}, maximum: {} },
    tools: { test: '1' },
    ...extra,
  }
}

/** The `code` of the ArtifactError `p` rejects with (fails the test when it resolves or rejects otherwise). */
export async function refusedWith(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(ArtifactError)
    return (e as ArtifactError).code
  }
  throw new Error('expected a refusal')
}

/** A real proxy-wasm filter: adds request header `x-bundle: <tag>` (tag is 2 ASCII bytes). */
export function tagFilter(tag: string): Promise<Uint8Array> {
  return wat(`(module
    (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 2)
    (data (i32.const 16) "x-bundle")
    (data (i32.const 32) "${tag}")
    (global $heap (mut i32) (i32.const 1024))
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
      (local.get $p))
    (func (export "proxy_on_context_create") (param i32 i32))
    (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
    (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
    (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
      (drop (call $add (i32.const 0) (i32.const 16) (i32.const 8) (i32.const 32) (i32.const 2)))
      (i32.const 0))
    (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
    (func (export "proxy_on_log") (param i32))
    (func (export "proxy_on_delete") (param i32)))`)
}

/**
 * Registry benchmark, run by itself: `npx tsx registry/bench/admission.ts`.
 *
 * 1. Admission time of a ~100 KB AssemblyScript bundle (the add-headers example plus generated
 *    functions, compiled without optimization), published over loopback HTTP: verify +
 *    validate + instrument + smoke run through the runtime's Wasm host, plus storage. Each
 *    round publishes a new version whose module differs by a custom section, so no cache helps.
 * 2. Download throughput of stored blobs by digest: the 100 KB bundle (sequential and 8
 *    concurrent) and an 8 MiB bundle.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildFilter } from '@omnirelay/sdk-as/build'
import { packBundle } from '@omnirelay/runtime/bundles/format.ts'
import { serializeManifest, type BundleManifest } from '@omnirelay/runtime/bundles/manifest.ts'
import { sha256Digest } from '@omnirelay/runtime/bundles/digest.ts'
import { generateSigningKey } from '@omnirelay/runtime/bundles/keys.ts'
import { signBundle } from '@omnirelay/runtime/bundles/sign.ts'
import { readWasmImports } from '@omnirelay/runtime/bundles/wasm-imports.ts'
import { requiredCapabilities } from '@omnirelay/runtime/bundles/wasm-capabilities.ts'
import { startRegistry } from '../src/index.ts'

const ROUNDS = Number(process.env.ROUNDS ?? 7)
const enc = new TextEncoder()

/** Appends a custom section so every round's module (and digest) differs. */
function withCustomSection(wasm: Uint8Array, tag: string): Uint8Array {
  const name = enc.encode('bench')
  const payload = enc.encode(tag)
  const body = [name.length, ...name, ...payload]
  return new Uint8Array([...wasm, 0, body.length, ...body])
}

function bundle(name: string, version: string, wasm: Uint8Array, extra: Record<string, Uint8Array> = {}): Uint8Array {
  const samples = enc.encode(
    JSON.stringify({
      config: { request: { add: { 'x-added': '1' }, remove: ['x-internal'] }, response: { add: { 'x-served-by': 'omnirelay' } } },
      requests: [
        { method: 'GET', path: '/', headers: [['x-internal', 'secret']] },
        { method: 'POST', path: '/api', headers: [['content-type', 'application/json']], body: '{"a":1}', response: { status: 201, body: '{}' } },
      ],
    }),
  )
  const artifacts = new Map<string, Uint8Array>([['filter.wasm', wasm], ['smoke/samples.json', samples], ...Object.entries(extra)])
  const manifest: BundleManifest = {
    schemaVersion: 1,
    name,
    version,
    kind: 'wasm',
    abi: 'proxy-wasm/0.2.1',
    entry: 'filter.wasm',
    artifacts: [...artifacts].map(([path, data]) => ({ path, digest: sha256Digest(data), size: data.length })),
    capabilities: requiredCapabilities(readWasmImports(wasm) ?? []),
    quotas: { default: { fuel: 5_000_000, memoryBytes: 8 << 20, timeoutMs: 100 }, maximum: { fuel: 50_000_000, memoryBytes: 16 << 20 } },
    tools: { assemblyscript: 'sdk-as' },
  }
  return packBundle({ manifest: serializeManifest(manifest), artifacts })
}

const EXTRA_FUNCTIONS = Number(process.env.EXTRA_FUNCTIONS ?? 220)

/**
 * The add-headers example plus generated functions (each with a loop, all reachable from
 * onRequestHeaders), compiled without optimization: a ~100 KB module of real SDK code.
 */
async function buildBenchFilter(): Promise<Uint8Array> {
  const example = await readFile(new URL('../../examples/filters/add-headers/assembly/index.ts', import.meta.url), 'utf8')
  const hook = 'if (!edits.empty) edits.apply(this.requestHeaders);'
  if (!example.includes(hook)) throw new Error('the add-headers example changed: update the bench generator')
  const fns: string[] = []
  const cases: string[] = []
  for (let i = 0; i < EXTRA_FUNCTIONS; i++) {
    fns.push(`function churn${i}(x: i32): i32 { let s = x ^ ${i * 2654435761 >>> 0}; for (let j = 0; j < ${(i % 7) + 2}; j++) { s = s * 31 + j; if (s & 1) s ^= 0x5bd1e995; else s += ${i}; } return s; }`)
    cases.push(`    case ${i}: return churn${i}(x);`)
  }
  const source = example.replace(hook, `${hook}\n    churn(<i32>numHeaders);`) +
    `\n${fns.join('\n')}\nfunction churn(x: i32): i32 {\n  switch (x % ${EXTRA_FUNCTIONS}) {\n${cases.join('\n')}\n  }\n  return x;\n}\n`
  const entry = join(dir, 'assembly', 'index.ts')
  await mkdir(join(dir, 'assembly'), { recursive: true })
  await writeFile(entry, source)
  return (await buildFilter({ entry, optimize: false })).wasm
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const fmt = (ms: number): string => `${ms.toFixed(1)} ms`

const dir = await mkdtemp(join(tmpdir(), 'meshkit-registry-bench-'))
const key = generateSigningKey('ed25519', 'bench-1')
const token = 'mkr_bench_token_0123456789'
const reg = await startRegistry({
  dataDir: dir,
  trustPolicy: { version: 1, publishers: [{ name: 'bench', keys: [{ keyId: key.keyId, publicKey: key.publicKeyPem }] }] },
  tokens: [{ id: 'bench', token }],
})
try {
  const wasm = await buildBenchFilter()
  console.log(`module: ${wasm.length} bytes (AssemblyScript: the add-headers example + ${EXTRA_FUNCTIONS} generated functions, unoptimized)`)

  const totals: number[] = []
  const steps: Record<string, number[]> = {}
  let runner = ''
  let size = 0
  let firstDigest = ''
  for (let i = 0; i <= ROUNDS; i++) {
    const file = await signBundle(bundle('bench-filter', `1.0.${i}`, withCustomSection(wasm, String(i))), key)
    size = file.length
    const t0 = performance.now()
    const res = await fetch(`${reg.url}/v1/bundles`, { method: 'POST', body: file, headers: { authorization: `Bearer ${token}` } })
    const ms = performance.now() - t0
    const body = (await res.json()) as { bundle: { digest: string; admission: { steps: Record<string, number>; smoke: { runner: string } } }; error?: unknown }
    if (res.status !== 201) throw new Error(`publish failed: ${JSON.stringify(body)}`)
    if (i === 0) {
      firstDigest = body.bundle.digest
      console.log(`round 0 (cold: binaryen load, host import): ${fmt(ms)}`)
      continue
    }
    runner = body.bundle.admission.smoke.runner
    totals.push(ms)
    for (const [k, v] of Object.entries(body.bundle.admission.steps)) (steps[k] ??= []).push(v)
  }
  console.log(`bundle: ${size} bytes; smoke runner: ${runner}; ${ROUNDS} warm rounds`)
  console.log(`admission over HTTP (median): ${fmt(median(totals))}  [min ${fmt(Math.min(...totals))}, max ${fmt(Math.max(...totals))}]`)
  console.log('  steps (median): ' + Object.entries(steps).map(([k, v]) => `${k} ${fmt(median(v))}`).join(', '))

  // Downloads, with a keep-alive node:http client (fetch's own overhead would dominate).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
  const get = (digest: string, headers: Record<string, string> = {}) =>
    new Promise<number>((resolve, reject) => {
      http
        .get(`${reg.url}/v1/blobs/${digest}`, { agent, headers }, (r) => {
          let n = 0
          r.on('data', (c: Buffer) => (n += c.length))
          r.on('end', () => resolve(n))
        })
        .on('error', reject)
    })
  await get(firstDigest)
  const N = 1000
  let t0 = performance.now()
  let bytes = 0
  for (let i = 0; i < N; i++) bytes += await get(firstDigest)
  let s = (performance.now() - t0) / 1000
  console.log(`download ${size} B bundle, sequential: ${(N / s).toFixed(0)} req/s, ${(bytes / s / 1e6).toFixed(0)} MB/s`)
  t0 = performance.now()
  const counts = await Promise.all(
    Array.from({ length: 8 }, async () => {
      let n = 0
      for (let i = 0; i < N / 8; i++) n += await get(firstDigest)
      return n
    }),
  )
  bytes = counts.reduce((a, b) => a + b, 0)
  s = (performance.now() - t0) / 1000
  console.log(`download ${size} B bundle, 8 concurrent: ${(N / s).toFixed(0)} req/s, ${(bytes / s / 1e6).toFixed(0)} MB/s`)
  t0 = performance.now()
  for (let i = 0; i < N; i++) await get(firstDigest, { 'if-none-match': `"${firstDigest}"` })
  console.log(`revalidation (304): ${(N / ((performance.now() - t0) / 1000)).toFixed(0)} req/s`)

  const big = await signBundle(bundle('bench-big', '1.0.0', withCustomSection(wasm, 'big'), { 'data.bin': new Uint8Array(8 << 20).fill(7) }), key)
  const pb = await fetch(`${reg.url}/v1/bundles`, { method: 'POST', body: big, headers: { authorization: `Bearer ${token}` } })
  const bigDigest = ((await pb.json()) as { bundle: { digest: string } }).bundle.digest
  t0 = performance.now()
  bytes = 0
  for (let i = 0; i < 20; i++) bytes += await get(bigDigest)
  s = (performance.now() - t0) / 1000
  console.log(`download ${(big.length / 2 ** 20).toFixed(1)} MiB bundle (streamed from disk), sequential: ${(bytes / s / 1e6).toFixed(0)} MB/s`)
  agent.destroy()
} finally {
  await reg.close()
  await rm(dir, { recursive: true, force: true })
}

// Packs and signs every example filter into a bundle, with a development publisher key that is
// generated here at build time (never committed: build/ is gitignored), and writes a trust
// policy trusting that key, so the edge example loads the filters verified.
// Run by `npm run build` (examples/build.js) after examples/filters/build.js compiled
// examples/filters/<name>/build/filter.wasm. Run under tsx: it imports the runtime's TS sources.
//
// Output (examples/bundles/build/):
//   dev-publisher.key.json   private key, 0600 (development only)
//   dev-publisher.pub.pem    its public key
//   trust-policy.yaml        trusts dev-publisher for wasm and quickjs bundles
//   <name>.orb               one signed bundle per example filter
//   bundles.json             { "<name>": { "path": "<name>.orb" (relative to this folder), "digest": "sha256:…", … } } for configs to pin
//   filters.json             { trustPolicy, filters: [FilterDefinition…] } with absolute paths, ready to merge into a
//                            proxy config (the edge example does): digests change whenever the dev key is regenerated
import { existsSync, readdirSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  buildBundle,
  compileTrustPolicy,
  generateSigningKey,
  readSigningKey,
  sha256Digest,
  signBundle,
  unpackBundle,
  verifyBundle,
  writeKeyFiles,
} from '@omnirelay/runtime/bundles/index.ts'

const here = dirname(fileURLToPath(import.meta.url))
const filtersDir = join(here, '..', 'filters')
const out = join(here, 'build')
const KEY_ID = 'dev-publisher'
const VERSION = '0.1.0'

/** Example filters that have something to bundle: a compiled .wasm or a JS filter. */
function sources() {
  if (!existsSync(filtersDir)) return []
  const found = []
  for (const d of readdirSync(filtersDir, { withFileTypes: true })) {
    if (!d.isDirectory()) continue
    const dir = join(filtersDir, d.name)
    const wasm = join(dir, 'build', 'filter.wasm')
    const js = join(dir, 'filter.js')
    const template = join(dir, 'bundle.json')
    const manifestTemplate = existsSync(template) ? template : undefined
    const samplesFile = join(dir, 'smoke-samples.json')
    const samples = existsSync(samplesFile) ? samplesFile : undefined
    if (existsSync(wasm)) found.push({ name: d.name, source: wasm, manifestTemplate, samples })
    else if (existsSync(js)) found.push({ name: d.name, source: js, manifestTemplate, samples })
  }
  return found.sort((a, b) => a.name.localeCompare(b.name))
}

async function devKey() {
  const file = join(out, `${KEY_ID}.key.json`)
  if (existsSync(file)) return readSigningKey(file)
  const key = generateSigningKey('ed25519', KEY_ID)
  await writeKeyFiles(key, join(out, KEY_ID))
  console.log(`bundles: generated development publisher key ${KEY_ID} (${relative(process.cwd(), file)}, 0600; never ship it)`)
  return key
}

async function main() {
  const list = sources()
  if (list.length === 0) {
    console.log('bundles: no compiled example filters yet (examples/filters/*/build/filter.wasm): skipping')
    return
  }
  await mkdir(out, { recursive: true })
  const key = await devKey()
  const policyText = [
    '# Development trust policy written by examples/bundles/build.js. Trusts only the dev key',
    '# generated at build time. Do not use in production.',
    'version: 1',
    'publishers:',
    '  - name: examples-dev',
    '    keys:',
    `      - keyId: ${KEY_ID}`,
    `        publicKeyFile: ${KEY_ID}.pub.pem`,
    '    kinds: [wasm, quickjs]',
    '    names: ["*"]',
    '',
  ].join('\n')
  await writeFile(join(out, 'trust-policy.yaml'), policyText)
  const policy = await compileTrustPolicy(
    { version: 1, publishers: [{ name: 'examples-dev', keys: [{ keyId: KEY_ID, publicKey: key.publicKeyPem }], kinds: ['wasm', 'quickjs'] }] },
    out,
  )
  const index = {}
  for (const { name, source, manifestTemplate, samples } of list) {
    const target = join(out, `${name}.orb`)
    const built = await buildBundle({ source, name, version: VERSION, manifestTemplate, samples, sourceUrl: undefined })
    let file
    // Keep an existing bundle whose contents are unchanged and still verify: digests stay
    // stable across builds, so configs pinning them do not churn.
    if (existsSync(target)) {
      const old = new Uint8Array(await readFile(target))
      try {
        const v = await verifyBundle(old, policy)
        if (v.manifestDigest === sha256Digest(unpackBundle(built.file).manifest)) file = old
      } catch {
        // stale or foreign: re-sign below
      }
    }
    let signMs = 0
    if (!file) {
      const t0 = performance.now()
      file = await signBundle(built.file, key)
      signMs = performance.now() - t0
      await writeFile(target, file)
    }
    const t1 = performance.now()
    const v = await verifyBundle(file, policy)
    const verifyMs = performance.now() - t1
    index[name] = {
      path: `${name}.orb`,
      digest: v.digest,
      kind: v.manifest.kind,
      version: v.manifest.version,
      capabilities: v.manifest.capabilities,
    }
    console.log(
      `bundles: ${name}.orb ${v.manifest.kind} [${v.manifest.capabilities.join(', ')}] ${v.digest.slice(0, 19)}… ` +
        (signMs ? `signed ${signMs.toFixed(1)} ms, ` : 'unchanged, ') +
        `verified ${verifyMs.toFixed(1)} ms`,
    )
  }
  await writeFile(join(out, 'bundles.json'), JSON.stringify(index, null, 2) + '\n')
  const filters = Object.entries(index).map(([name, b]) => ({
    name,
    kind: b.kind,
    bundle: { path: join(out, b.path), digest: b.digest },
    capabilities: b.capabilities,
  }))
  await writeFile(join(out, 'filters.json'), JSON.stringify({ trustPolicy: join(out, 'trust-policy.yaml'), filters }, null, 2) + '\n')
  console.log(`bundles: ${list.length} signed bundles and trust-policy.yaml in ${relative(process.cwd(), out) || out}`)
}

main().catch((e) => {
  console.error(`bundles: ${e.code ? `[${e.code}] ` : ''}${e.message}`)
  process.exit(1)
})

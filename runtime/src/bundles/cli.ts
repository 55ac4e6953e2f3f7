/**
 * `omnirelay bundle …`: build, keygen, sign, verify and inspect signed extension bundles.
 * Works with no network (publish excepted). Exit codes: 0 ok, 1 refused/failed (the error code is printed),
 * 2 usage error.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { CAPABILITIES, type Capability, type Quotas } from '../pipeline/filter.ts'
import { buildBundle } from './build.ts'
import { sha256Digest } from './digest.ts'
import { ArtifactError } from './errors.ts'
import { BUNDLE_EXTENSION, unpackBundle } from './format.ts'
import { generateSigningKey, KEY_ALGORITHMS, keyFingerprint, readSigningKey, writeKeyFiles, type KeyAlgorithm } from './keys.ts'
import { parseManifest } from './manifest.ts'
import { signBundle } from './sign.ts'
import { loadTrustPolicy } from './trust-policy.ts'
import { verifyBundle } from './verify.ts'

const HELP = `Usage: omnirelay bundle <command> [options]

Signed extension bundles (.orb): one file holding a manifest, the filter module and a
Sigstore signature. Everything but publish works offline.

Commands:
  build <source>     Pack a filter into an (unsigned) bundle. <source> is one of:
                       an AssemblyScript project folder (compiled with @omnirelay/sdk-as),
                       a .js filter (kind quickjs; --kind native for a trusted native module),
                       a prebuilt proxy-wasm .wasm from any SDK.
                     Validates the module and checks its imports fit the requested capabilities.
  keygen             Create a publisher key pair (private key file written 0600).
  sign <bundle>      Sign a bundle with a publisher key (replaces an existing signature).
  verify <bundle>    Verify a bundle against a trust policy, exactly as the host does before load.
  inspect <bundle>   Show manifest, digests, signer and capabilities (no verification).
  publish <bundle>   Push a signed bundle to a MeshKit registry, which admits or refuses it
                     (the only command that uses the network).

Run 'omnirelay bundle <command> --help' for the options of a command.
`

const COMMAND_HELP: Record<string, string> = {
  build: `Usage: omnirelay bundle build <source> [options]

  -o, --out FILE            Output bundle (default: <name>-<version>${BUNDLE_EXTENSION})
      --kind KIND           wasm | quickjs | native (default from <source>)
      --name NAME           Bundle name (default: package.json name)
      --version SEMVER      Bundle version (default: package.json version)
      --capabilities LIST   Comma list of requested capabilities (default for wasm: what the
                            imports need). Known: ${CAPABILITIES.join(', ')}
      --quota K=V           Default quota (fuel, memoryBytes, timeoutMs, maxBodyBytes); repeatable
      --max-quota K=V       Maximum quota; repeatable
      --config-schema FILE  JSON Schema for the filter's config
      --manifest FILE       JSON template with any manifest fields
      --samples FILE        JSON sample requests (and config) for the registry smoke run,
                            packed as the signed artifact smoke/samples.json
      --description TEXT    --source-url URL
      --key FILE            Also sign with this key (see 'sign')
      --key-id ID           Key id for a PEM private key
`,
  keygen: `Usage: omnirelay bundle keygen [options]

      --algorithm ALG       ecdsa-p256 (default) | ed25519
      --key-id ID           Key id hint recorded in signatures (default: derived from the key)
  -o, --out BASE            Writes BASE.key.json (private, 0600) and BASE.pub.pem (default: ./<key-id>)
      --force               Overwrite existing files
`,
  sign: `Usage: omnirelay bundle sign <bundle> --key FILE [options]

      --key FILE            Private key: a .key.json from keygen, or a PKCS#8 PEM with --key-id
      --key-id ID           Key id hint (overrides the key file's)
  -o, --out FILE            Output (default: overwrite <bundle>)
`,
  verify: `Usage: omnirelay bundle verify <bundle> --policy FILE [options]

      --policy FILE         Trust policy (YAML or JSON); see docs/trust-policy.md
      --digest DIGEST       Also require this sha256 file digest (as a config pin would)
      --at TIME             Check key validity at this ISO time instead of now
      --json                Machine-readable result
`,
  publish: `Usage: omnirelay bundle publish <bundle> --registry URL [options]

      --registry URL        Registry base URL (or env OMNIRELAY_REGISTRY_URL)
      --token TOKEN         Publish token (or env OMNIRELAY_REGISTRY_TOKEN); a token is scoped
                            to name patterns by the registry
      --json                Machine-readable result

Prints the admitted digest ("exists" when the identical file was already there). A refusal
prints {code, step, message} (the admission step that refused it) and exits 1.
`,
  inspect: `Usage: omnirelay bundle inspect <bundle> [--json]

Prints the manifest, digests, signer key id and capabilities. Does NOT verify: use 'verify'.
`,
}

class UsageError extends Error {}

function parseQuotas(list: string[] | undefined): Quotas | undefined {
  if (!list || list.length === 0) return undefined
  const out: Record<string, number> = {}
  for (const item of list) {
    const [k, v] = item.split('=', 2)
    if (!['fuel', 'memoryBytes', 'timeoutMs', 'maxBodyBytes'].includes(k) || v === undefined || !Number.isFinite(Number(v))) {
      throw new UsageError(`bad quota "${item}" (want fuel|memoryBytes|timeoutMs|maxBodyBytes=NUMBER)`)
    }
    out[k] = Number(v)
  }
  return out as Quotas
}

function parseCapabilities(text: string | undefined): Capability[] | undefined {
  if (text === undefined) return undefined
  const list = text.split(',').map((s) => s.trim()).filter(Boolean)
  for (const c of list) if (!(CAPABILITIES as readonly string[]).includes(c)) throw new UsageError(`unknown capability "${c}"`)
  return list as Capability[]
}

type Out = { log: (s: string) => void; err: (s: string) => void }

async function cmdBuild(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: 'string', short: 'o' },
      kind: { type: 'string' },
      name: { type: 'string' },
      version: { type: 'string' },
      capabilities: { type: 'string' },
      quota: { type: 'string', multiple: true },
      'max-quota': { type: 'string', multiple: true },
      'config-schema': { type: 'string' },
      manifest: { type: 'string' },
      samples: { type: 'string' },
      description: { type: 'string' },
      'source-url': { type: 'string' },
      key: { type: 'string' },
      'key-id': { type: 'string' },
    },
  })
  if (positionals.length !== 1) throw new UsageError('build needs exactly one <source>')
  const kind = values.kind
  if (kind !== undefined && kind !== 'wasm' && kind !== 'quickjs' && kind !== 'native') throw new UsageError(`unknown kind "${kind}"`)
  const configSchema = values['config-schema'] ? JSON.parse(await readFile(values['config-schema'], 'utf8')) : undefined
  const def = parseQuotas(values.quota)
  const max = parseQuotas(values['max-quota'])
  const result = await buildBundle({
    source: positionals[0],
    kind,
    name: values.name,
    version: values.version,
    capabilities: parseCapabilities(values.capabilities),
    quotas: def || max ? { default: def, maximum: max } : undefined,
    configSchema,
    manifestTemplate: values.manifest,
    samples: values.samples,
    description: values.description,
    sourceUrl: values['source-url'],
  })
  let file = result.file
  if (values.key) file = await signBundle(file, await readSigningKey(values.key, values['key-id']))
  const target = values.out ?? `${result.manifest.name.replace(/^@/, '').replace('/', '-')}-${result.manifest.version}${BUNDLE_EXTENSION}`
  await writeFile(target, file)
  out.log(`built ${target} (${result.manifest.name}@${result.manifest.version}, ${result.manifest.kind}, ${values.key ? 'signed' : 'unsigned'})`)
  out.log(`digest ${sha256Digest(file)}`)
  out.log(`capabilities ${result.manifest.capabilities.join(', ') || '(none)'}; imports need ${result.needed.join(', ') || '(none)'}`)
  return 0
}

async function cmdKeygen(args: string[], out: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      algorithm: { type: 'string', default: 'ecdsa-p256' },
      'key-id': { type: 'string' },
      out: { type: 'string', short: 'o' },
      force: { type: 'boolean', default: false },
    },
  })
  if (!(KEY_ALGORITHMS as readonly string[]).includes(values.algorithm as string)) {
    throw new UsageError(`unknown algorithm "${values.algorithm}" (want ${KEY_ALGORITHMS.join(' or ')})`)
  }
  const key = generateSigningKey(values.algorithm as KeyAlgorithm, values['key-id'])
  const { privateFile, publicFile } = await writeKeyFiles(key, values.out ?? key.keyId, values.force)
  out.log(`key id       ${key.keyId}`)
  out.log(`algorithm    ${key.algorithm}`)
  out.log(`fingerprint  ${keyFingerprint(key.publicKey)}`)
  out.log(`private key  ${privateFile} (0600: keep it secret)`)
  out.log(`public key   ${publicFile}`)
  out.log('\ntrust policy entry:')
  out.log(`  - name: ${key.keyId}\n    keys:\n      - keyId: ${key.keyId}\n        publicKeyFile: ${publicFile}\n    kinds: [wasm, quickjs]\n    names: ["*"]`)
  return 0
}

async function cmdSign(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { key: { type: 'string' }, 'key-id': { type: 'string' }, out: { type: 'string', short: 'o' } },
  })
  if (positionals.length !== 1) throw new UsageError('sign needs exactly one <bundle>')
  if (!values.key) throw new UsageError('sign needs --key')
  const key = await readSigningKey(values.key, values['key-id'])
  const t0 = performance.now()
  const signed = await signBundle(new Uint8Array(await readFile(positionals[0])), key)
  const ms = performance.now() - t0
  const target = values.out ?? positionals[0]
  await writeFile(target, signed)
  out.log(`signed ${target} with key ${key.keyId} (${key.algorithm}) in ${ms.toFixed(1)} ms`)
  out.log(`digest ${sha256Digest(signed)}`)
  return 0
}

async function cmdVerify(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { policy: { type: 'string' }, digest: { type: 'string' }, at: { type: 'string' }, json: { type: 'boolean', default: false } },
  })
  if (positionals.length !== 1) throw new UsageError('verify needs exactly one <bundle>')
  if (!values.policy) throw new UsageError('verify needs --policy FILE')
  const now = values.at ? new Date(values.at) : new Date()
  if (Number.isNaN(now.getTime())) throw new UsageError(`bad --at time "${values.at}"`)
  const policy = await loadTrustPolicy(values.policy)
  const bytes = new Uint8Array(await readFile(positionals[0]))
  const t0 = performance.now()
  try {
    const v = await verifyBundle(bytes, policy, { expectedDigest: values.digest, now })
    const ms = performance.now() - t0
    const m = v.manifest
    if (values.json) {
      out.log(JSON.stringify({ ok: true, name: m.name, version: m.version, kind: m.kind, digest: v.digest, manifestDigest: v.manifestDigest, signer: v.signer, capabilities: m.capabilities, neededCapabilities: v.neededCapabilities, maxQuotas: v.maxQuotas, ms: Number(ms.toFixed(2)) }))
    } else {
      out.log(`OK ${m.name}@${m.version} (${m.kind}) signed by ${v.signer.publisher} (key ${v.signer.keyId}); verified in ${ms.toFixed(1)} ms`)
      out.log(`digest ${v.digest}`)
    }
    return 0
  } catch (e) {
    if (!(e instanceof ArtifactError)) throw e
    if (values.json) out.log(JSON.stringify({ ok: false, code: e.code, message: e.message }))
    else out.err(`REFUSED [${e.code}] ${e.message}`)
    return 1
  }
}

async function cmdInspect(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean', default: false } } })
  if (positionals.length !== 1) throw new UsageError('inspect needs exactly one <bundle>')
  const bytes = new Uint8Array(await readFile(positionals[0]))
  const contents = unpackBundle(bytes)
  const m = parseManifest(contents.manifest)
  let signer: { keyId?: string; mediaType?: string } | undefined
  if (contents.signature) {
    try {
      const sb = JSON.parse(new TextDecoder().decode(contents.signature))
      signer = { keyId: sb?.verificationMaterial?.publicKey?.hint, mediaType: sb?.mediaType }
    } catch {
      signer = {}
    }
  }
  const info = {
    file: positionals[0],
    digest: sha256Digest(bytes),
    manifestDigest: sha256Digest(contents.manifest),
    signed: contents.signature !== undefined,
    signer,
    manifest: m,
  }
  if (values.json) {
    out.log(JSON.stringify(info, null, 2))
    return 0
  }
  const rows: [string, string][] = [
    ['name', m.name],
    ['version', m.version],
    ['kind', m.kind],
    ['abi', m.abi],
    ['digest', info.digest],
    ['manifest digest', info.manifestDigest],
    ['signed', info.signed ? `yes, key ${signer?.keyId ?? '?'} (not verified: use verify)` : 'NO'],
    ['capabilities', m.capabilities.join(', ') || '(none)'],
    ['default quotas', JSON.stringify(m.quotas.default)],
    ['maximum quotas', JSON.stringify(m.quotas.maximum)],
    ['config schema', m.configSchema ? 'yes' : 'no'],
    ['tools', Object.entries(m.tools).map(([k, v]) => `${k} ${v}`).join(', ')],
  ]
  if (m.description) rows.push(['description', m.description])
  if (m.sourceUrl) rows.push(['source', m.sourceUrl])
  for (const a of m.artifacts) rows.push([`artifact ${a.path}`, `${a.size} B ${a.digest}${a.path === m.entry ? ' (entry)' : ''}`])
  const w = Math.max(...rows.map(([k]) => k.length))
  for (const [k, v] of rows) out.log(`${k.padEnd(w)}  ${v}`)
  return 0
}

async function cmdPublish(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { registry: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean', default: false } },
  })
  if (positionals.length !== 1) throw new UsageError('publish needs exactly one <bundle>')
  const url = values.registry ?? process.env.OMNIRELAY_REGISTRY_URL
  if (!url) throw new UsageError('publish needs --registry URL')
  const token = values.token ?? process.env.OMNIRELAY_REGISTRY_TOKEN
  if (!token) throw new UsageError('publish needs --token or OMNIRELAY_REGISTRY_TOKEN')
  const bytes = new Uint8Array(await readFile(positionals[0]))
  // The registry client lives in @meshkit/registry; loaded only here, so the data plane does not need it.
  const { publishBundle, RegistryClientError } = await import('@meshkit/registry/client/publish.ts')
  try {
    const r = await publishBundle(url, token, bytes)
    const b = r.bundle
    if (values.json) out.log(JSON.stringify({ ok: true, result: r.result, name: b.name, version: b.version, digest: b.digest, instrumentedDigest: b.instrumentedDigest, signer: b.signer }))
    else {
      out.log(`${r.result === 'exists' ? 'EXISTS' : 'ADMITTED'} ${b.name}@${b.version} signed by ${b.signer.publisher} (key ${b.signer.keyId})`)
      out.log(`digest ${b.digest}`)
    }
    return 0
  } catch (e) {
    if (!(e instanceof RegistryClientError)) throw e
    const refusal = { code: e.code, step: e.step ?? null, message: e.message }
    if (values.json) out.log(JSON.stringify({ ok: false, status: e.status, ...refusal }))
    else out.err(`REFUSED [${e.code}]${e.step ? ` at step ${e.step}` : ''} ${e.message}`)
    return 1
  }
}

const COMMANDS: Record<string, (args: string[], out: Out) => Promise<number>> = {
  publish: cmdPublish,
  build: cmdBuild,
  keygen: cmdKeygen,
  sign: cmdSign,
  verify: cmdVerify,
  inspect: cmdInspect,
}

/**
 * Runs `omnirelay bundle <argv…>` and returns the exit code. Never throws.
 *
 * @example
 * process.exitCode = await bundleCommand(['verify', 'filter.orb', '--policy', 'trust.yaml'])
 */
export async function bundleCommand(
  argv: string[],
  out: Out = { log: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n') },
): Promise<number> {
  const [cmd, ...rest] = argv
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out.log(HELP)
    return cmd === undefined ? 2 : 0
  }
  const run = COMMANDS[cmd]
  if (!run) {
    out.err(`unknown command "${cmd}"\n\n${HELP}`)
    return 2
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    out.log(COMMAND_HELP[cmd])
    return 0
  }
  try {
    return await run(rest, out)
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      out.err(`${(e as Error).message}\n\n${COMMAND_HELP[cmd]}`)
      return 2
    }
    if (e instanceof ArtifactError) {
      out.err(`error [${e.code}] ${e.message}`)
      if (e.diagnostics) out.err(e.diagnostics.trimEnd())
      return 1
    }
    const err = e as NodeJS.ErrnoException
    out.err(`error${err.code ? ` [${err.code}]` : ''} ${err.message}`)
    return 1
  }
}

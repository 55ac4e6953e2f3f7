/**
 * Builds an unsigned bundle from a filter source: an AssemblyScript project (compiled with
 * the SDK's `buildFilter`), a JS filter (kind quickjs, or native), or a prebuilt proxy-wasm
 * `.wasm` from any SDK. Fills the manifest, validates the module and checks its imports
 * against the requested capabilities. Sign the result with `signBundle`.
 */
import { readFile, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { basename, extname, join, resolve } from 'node:path'
import type { Capability, FilterDefinition, Quotas } from '../pipeline/filter.ts'
import { sha256Digest } from './digest.ts'
import { ArtifactError, BundleErrorCode } from './errors.ts'
import { packBundle } from './format.ts'
import { ABIS, MANIFEST_SCHEMA_VERSION, serializeManifest, validateManifest, type BundleManifest } from './manifest.ts'
import { checkModule, neededCapabilities } from './module-check.ts'
import { readWasmExports } from './wasm-imports.ts'

/** Tool id recorded in every manifest this builder writes. */
export const BUNDLE_TOOL = 'omnirelay-bundle'
export const BUNDLE_TOOL_VERSION = '1.0.0'

export interface BuildInput {
  /** An AssemblyScript project folder, a `.js`/`.mjs` filter, or a `.wasm` module. */
  source: string
  /** Default: wasm for folders and `.wasm`, quickjs for JS. `native` must be asked for. */
  kind?: FilterDefinition['kind']
  /** Manifest fields; a folder's package.json and `bundle.json` fill what is not given. */
  name?: string
  version?: string
  description?: string
  sourceUrl?: string
  /** Default for Wasm: exactly what the imports need. Required for JS kinds. */
  capabilities?: Capability[]
  quotas?: { default?: Quotas; maximum?: Quotas }
  configSchema?: Record<string, unknown>
  tools?: Record<string, string>
  /** A JSON file with any manifest fields (a template); explicit fields above win. */
  manifestTemplate?: string
  /**
   * A JSON file of sample requests (and the config to run them with) for the registry's
   * smoke run, packed as the signed artifact `smoke/samples.json`. A project folder's own
   * `smoke/samples.json` is used when this is not given.
   */
  samples?: string
}

/** Artifact path of the smoke-run samples (read by the registry's admission). */
export const SAMPLES_ARTIFACT = 'smoke/samples.json'

export interface BuildResult {
  /** The unsigned bundle file. */
  file: Uint8Array
  manifest: BundleManifest
  /** Capabilities the module's imports need (Wasm). */
  needed: Capability[]
}

type Template = Partial<Omit<BundleManifest, 'quotas'>> & { quotas?: { default?: Quotas; maximum?: Quotas } }

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return undefined
  }
  try {
    return JSON.parse(text) as Record<string, unknown>
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.BuildFailed, `${file} is not valid JSON`, { cause: e })
  }
}

function packageName(name: unknown): string | undefined {
  return typeof name === 'string' ? name.toLowerCase() : undefined
}

function repoUrl(repo: unknown): string | undefined {
  const url = typeof repo === 'string' ? repo : (repo as { url?: unknown } | undefined)?.url
  if (typeof url !== 'string') return undefined
  const https = url.replace(/^git\+/, '').replace(/^git:\/\//, 'https://')
  return /^https?:\/\//.test(https) ? https : undefined
}

function versionOf(pkg: string, from: string): string | undefined {
  try {
    const req = createRequire(join(from, 'noop.js'))
    return (req(`${pkg}/package.json`) as { version?: string }).version
  } catch {
    return undefined
  }
}

/** Compiles an AssemblyScript filter project (entry `assembly/index.ts`) with the SDK's builder. */
async function compileAsProject(dir: string): Promise<{ wasm: Uint8Array; tools: Record<string, string> }> {
  let mod: { buildFilter?: (...args: unknown[]) => Promise<unknown> }
  try {
    // A variable specifier: the SDK package is plain JS and may be absent in a slim install.
    const specifier = '@omnirelay/sdk-as/build'
    mod = (await import(specifier)) as typeof mod
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.BuildFailed, 'the AssemblyScript SDK builder (@omnirelay/sdk-as/build) is not available', { cause: e })
  }
  if (typeof mod.buildFilter !== 'function') {
    throw new ArtifactError(BundleErrorCode.BuildFailed, '@omnirelay/sdk-as/build does not export buildFilter')
  }
  let out: unknown
  try {
    out = await mod.buildFilter({ entry: join(dir, 'assembly', 'index.ts') })
  } catch (e) {
    const diagnostics = (e as { diagnostics?: unknown }).diagnostics
    throw new ArtifactError(BundleErrorCode.BuildFailed, `AssemblyScript build of ${dir} failed: ${(e as Error).message}`, {
      cause: e,
      diagnostics: typeof diagnostics === 'string' ? diagnostics : undefined,
    })
  }
  const wasm = await wasmFromBuildResult(out)
  const tools: Record<string, string> = {}
  const asc = versionOf('assemblyscript', dir)
  const sdk = versionOf('@omnirelay/sdk-as', dir)
  if (asc) tools.assemblyscript = asc
  if (sdk) tools['@omnirelay/sdk-as'] = sdk
  return { wasm, tools }
}

// The SDK's result shape is its own; accept the reasonable ones.
async function wasmFromBuildResult(out: unknown): Promise<Uint8Array> {
  if (out instanceof Uint8Array) return out
  const o = out as Record<string, unknown> | undefined
  for (const k of ['wasm', 'binary', 'bytes']) if (o?.[k] instanceof Uint8Array) return o[k] as Uint8Array
  for (const k of ['wasmFile', 'outFile', 'output', 'file']) {
    if (typeof o?.[k] === 'string') return new Uint8Array(await readFile(o[k] as string))
  }
  throw new ArtifactError(BundleErrorCode.BuildFailed, 'AssemblyScript build returned no module')
}

function detectWasmAbi(wasm: Uint8Array): string {
  const exports = readWasmExports(wasm)
  if (!exports) throw new ArtifactError(BundleErrorCode.ModuleInvalid, 'not a valid Wasm module')
  if (exports.includes('proxy_abi_version_0_2_1')) return 'proxy-wasm/0.2.1'
  if (exports.includes('proxy_abi_version_0_2_0')) return 'proxy-wasm/0.2.0'
  throw new ArtifactError(BundleErrorCode.ModuleInvalid, 'not a proxy-wasm module (no proxy_abi_version_0_2_x export)')
}

/**
 * Builds an unsigned bundle.
 *
 * @example
 * const { file, manifest } = await buildBundle({ source: 'filters/add-header/build/filter.wasm', name: 'add-header', version: '1.0.0' })
 */
export async function buildBundle(input: BuildInput): Promise<BuildResult> {
  const source = resolve(input.source)
  const st = await stat(source).catch((e: unknown) => {
    throw new ArtifactError(BundleErrorCode.BuildFailed, `cannot read ${source}`, { cause: e })
  })
  const template: Template = input.manifestTemplate ? ((await readJson(resolve(input.manifestTemplate))) as Template) ?? {} : {}
  if (input.manifestTemplate && Object.keys(template).length === 0 && !(await stat(resolve(input.manifestTemplate)).catch(() => undefined))) {
    throw new ArtifactError(BundleErrorCode.BuildFailed, `cannot read manifest template ${input.manifestTemplate}`)
  }
  let kind: FilterDefinition['kind']
  let bytes: Uint8Array
  let artifactPath: string
  const tools: Record<string, string> = {}
  let pkg: Record<string, unknown> = {}
  if (st.isDirectory()) {
    kind = input.kind ?? 'wasm'
    if (kind !== 'wasm') throw new ArtifactError(BundleErrorCode.BuildFailed, 'a project folder builds a wasm bundle')
    pkg = (await readJson(join(source, 'package.json'))) ?? {}
    Object.assign(template, { ...((await readJson(join(source, 'bundle.json'))) ?? {}), ...template })
    const built = await compileAsProject(source)
    bytes = built.wasm
    Object.assign(tools, built.tools)
    artifactPath = 'filter.wasm'
  } else {
    bytes = new Uint8Array(await readFile(source))
    const ext = extname(source)
    if (ext === '.wasm') {
      kind = input.kind ?? 'wasm'
      if (kind !== 'wasm') throw new ArtifactError(BundleErrorCode.BuildFailed, 'a .wasm file builds a wasm bundle')
      artifactPath = 'filter.wasm'
    } else if (ext === '.js' || ext === '.mjs' || ext === '.cjs') {
      kind = input.kind ?? template.kind ?? 'quickjs'
      if (kind === 'wasm') throw new ArtifactError(BundleErrorCode.BuildFailed, 'a JS file builds a quickjs or native bundle')
      artifactPath = kind === 'native' ? `filter${ext === '.js' ? '.mjs' : ext}` : 'filter.js'
    } else {
      throw new ArtifactError(BundleErrorCode.BuildFailed, `do not know how to build ${basename(source)} (want a folder, .wasm or .js)`)
    }
  }
  const abi = kind === 'wasm' ? detectWasmAbi(bytes) : ABIS[kind][0]
  const needed = neededCapabilities(kind, bytes)
  const capabilities = input.capabilities ?? template.capabilities ?? (kind === 'wasm' ? needed : undefined)
  if (!capabilities) {
    throw new ArtifactError(BundleErrorCode.BuildFailed, `${kind} bundles must declare their capabilities (--capabilities)`)
  }
  const name = input.name ?? template.name ?? packageName(pkg.name)
  const version = input.version ?? template.version ?? (typeof pkg.version === 'string' ? pkg.version : undefined)
  if (!name || !version) throw new ArtifactError(BundleErrorCode.BuildFailed, 'a bundle needs a name and a version (--name, --version)')
  const manifest: BundleManifest = {
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    name,
    version,
    kind,
    abi,
    entry: artifactPath,
    artifacts: [{ path: artifactPath, digest: sha256Digest(bytes), size: bytes.length }],
    capabilities: [...new Set(capabilities)].sort(),
    quotas: {
      default: { ...template.quotas?.default, ...input.quotas?.default },
      maximum: { ...template.quotas?.maximum, ...input.quotas?.maximum },
    },
    configSchema: input.configSchema ?? template.configSchema,
    tools: { [BUNDLE_TOOL]: BUNDLE_TOOL_VERSION, ...tools, ...template.tools, ...input.tools },
    description: input.description ?? template.description ?? (typeof pkg.description === 'string' ? pkg.description : undefined),
    sourceUrl: input.sourceUrl ?? template.sourceUrl ?? repoUrl(pkg.repository),
  }
  const artifacts = new Map([[artifactPath, bytes]])
  const samplesFile = input.samples ?? (st.isDirectory() ? join(source, SAMPLES_ARTIFACT) : undefined)
  const samples = samplesFile === undefined ? undefined : await readJson(samplesFile)
  if (samples !== undefined) {
    const samplesBytes = new TextEncoder().encode(JSON.stringify(samples))
    artifacts.set(SAMPLES_ARTIFACT, samplesBytes)
    manifest.artifacts.push({ path: SAMPLES_ARTIFACT, digest: sha256Digest(samplesBytes), size: samplesBytes.length })
  } else if (input.samples !== undefined) {
    throw new ArtifactError(BundleErrorCode.BuildFailed, `samples file ${input.samples} not found`)
  }
  validateManifest(manifest)
  checkModule(manifest, bytes)
  const file = packBundle({ manifest: serializeManifest(manifest), artifacts })
  return { file, manifest, needed }
}

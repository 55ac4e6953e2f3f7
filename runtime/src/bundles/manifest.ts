/**
 * The bundle manifest: what a bundle is, what it holds and what it asks for. Validated once
 * with a JSON Schema (published in docs/bundle-format.md) plus the checks a schema cannot say.
 */
import { Ajv, type ValidateFunction } from 'ajv'
import { CAPABILITIES, type Capability, type FilterDefinition, type Quotas } from '../pipeline/filter.ts'
import { sha256Digest } from './digest.ts'
import { ArtifactError, BundleErrorCode } from './errors.ts'
import { isArtifactPath } from './format.ts'

export const MANIFEST_SCHEMA_VERSION = 1

/** ABI identifiers a manifest may declare, per kind. */
export const ABIS = {
  wasm: ['proxy-wasm/0.2.1', 'proxy-wasm/0.2.0'],
  quickjs: ['omnirelay-quickjs/1'],
  native: ['omnirelay-native/1'],
} as const satisfies Record<FilterDefinition['kind'], readonly string[]>

export interface ManifestArtifact {
  /** Path inside the bundle (stored as `artifacts/<path>`). */
  path: string
  /** `sha256:<hex>` of the artifact bytes. */
  digest: string
  size: number
}

export interface BundleManifest {
  schemaVersion: 1
  /** npm-style name, optionally scoped: `header-rewrite`, `@acme/waf`. */
  name: string
  /** Semantic version 2.0.0. */
  version: string
  kind: FilterDefinition['kind']
  /** One of `ABIS[kind]`. */
  abi: string
  /** Path of the artifact the host loads (must be listed in `artifacts`). */
  entry: string
  artifacts: ManifestArtifact[]
  /** What the filter asks to be granted. Its imports must fit in this set. */
  capabilities: Capability[]
  quotas: { default: Quotas; maximum: Quotas }
  /** JSON Schema (draft-07) for the filter's `config`; absent means any JSON. */
  configSchema?: Record<string, unknown>
  /** Versions of the SDK and tools that produced the artifacts, e.g. `{ "assemblyscript": "0.28.20" }`. */
  tools: Record<string, string>
  description?: string
  sourceUrl?: string
}

// semver.org's recommended regex.
const SEMVER =
  '^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-((?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\\.(?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$'
const NAME = '^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$'

/** JSON Schema of a `Quotas` object; the trust policy's `maxQuotas` uses it too. */
export const QUOTAS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    fuel: { type: 'integer', minimum: 1 },
    memoryBytes: { type: 'integer', minimum: 65536 },
    timeoutMs: { type: 'number', exclusiveMinimum: 0 },
    maxBodyBytes: { type: 'integer', minimum: 0 },
  },
} as const

/** The manifest's JSON Schema (draft-07). */
export const MANIFEST_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://omnirelay.dev/schemas/bundle-manifest-v1.json',
  type: 'object',
  additionalProperties: false,
  required: ['schemaVersion', 'name', 'version', 'kind', 'abi', 'entry', 'artifacts', 'capabilities', 'quotas', 'tools'],
  properties: {
    schemaVersion: { const: MANIFEST_SCHEMA_VERSION },
    name: { type: 'string', pattern: NAME, maxLength: 214 },
    version: { type: 'string', pattern: SEMVER, maxLength: 128 },
    kind: { enum: ['wasm', 'quickjs', 'native'] },
    abi: { type: 'string', maxLength: 64 },
    entry: { type: 'string', maxLength: 245 },
    artifacts: {
      type: 'array',
      minItems: 1,
      maxItems: 62,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['path', 'digest', 'size'],
        properties: {
          path: { type: 'string', maxLength: 245 },
          digest: { type: 'string', pattern: '^sha256:[0-9a-f]{64}$' },
          size: { type: 'integer', minimum: 0 },
        },
      },
    },
    capabilities: { type: 'array', uniqueItems: true, items: { enum: [...CAPABILITIES] } },
    quotas: {
      type: 'object',
      additionalProperties: false,
      required: ['default', 'maximum'],
      properties: { default: QUOTAS_SCHEMA, maximum: QUOTAS_SCHEMA },
    },
    configSchema: { type: 'object' },
    tools: { type: 'object', additionalProperties: { type: 'string', maxLength: 128 } },
    description: { type: 'string', maxLength: 4096 },
    sourceUrl: { type: 'string', maxLength: 2048, pattern: '^https?://' },
  },
} as const

let validateSchema: ValidateFunction | undefined

/** A fresh Ajv for filter config schemas (no remote refs, no code from the bundle runs). */
export function newAjv(): Ajv {
  return new Ajv({ allErrors: false, strict: false, validateFormats: false })
}

/**
 * Parses and validates manifest bytes. Throws ArtifactError `manifest_invalid` naming the
 * first problem.
 *
 * @example
 * const m = parseManifest(contents.manifest)
 */
export function parseManifest(bytes: Uint8Array): BundleManifest {
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.ManifestInvalid, 'manifest is not UTF-8 JSON', { cause: e })
  }
  return validateManifest(value)
}

/** Validates a manifest object (e.g. one the build tool assembled). */
export function validateManifest(value: unknown): BundleManifest {
  validateSchema ??= newAjv().compile(MANIFEST_SCHEMA)
  if (!validateSchema(value)) {
    const err = validateSchema.errors?.[0]
    throw new ArtifactError(
      BundleErrorCode.ManifestInvalid,
      `manifest: ${err ? `${err.instancePath || '/'} ${err.message}` : 'invalid'}`,
    )
  }
  const m = value as BundleManifest
  const abis: readonly string[] = ABIS[m.kind]
  if (!abis.includes(m.abi)) {
    throw new ArtifactError(BundleErrorCode.ManifestInvalid, `manifest: abi "${m.abi}" is not one of ${abis.join(', ')} for kind ${m.kind}`)
  }
  const paths = new Set<string>()
  for (const a of m.artifacts) {
    if (!isArtifactPath(a.path)) throw new ArtifactError(BundleErrorCode.ManifestInvalid, `manifest: bad artifact path "${a.path}"`)
    if (paths.has(a.path)) throw new ArtifactError(BundleErrorCode.ManifestInvalid, `manifest: duplicate artifact "${a.path}"`)
    paths.add(a.path)
  }
  if (!paths.has(m.entry)) throw new ArtifactError(BundleErrorCode.ManifestInvalid, `manifest: entry "${m.entry}" is not an artifact`)
  for (const k of Object.keys(m.quotas.default) as (keyof Quotas)[]) {
    const max = m.quotas.maximum[k]
    if (max !== undefined && (m.quotas.default[k] as number) > max) {
      throw new ArtifactError(BundleErrorCode.ManifestInvalid, `manifest: default quota ${k} exceeds its maximum`)
    }
  }
  if (m.configSchema !== undefined) {
    try {
      newAjv().compile(m.configSchema)
    } catch (e) {
      throw new ArtifactError(BundleErrorCode.ManifestInvalid, 'manifest: configSchema is not a valid JSON Schema', { cause: e })
    }
  }
  return m
}

/** Serializes a manifest the way the tooling writes it (stable key order, 2-space indent). */
export function serializeManifest(m: BundleManifest): Uint8Array {
  const ordered: Record<string, unknown> = {}
  for (const key of Object.keys(MANIFEST_SCHEMA.properties)) {
    const v = (m as unknown as Record<string, unknown>)[key]
    if (v !== undefined) ordered[key] = v
  }
  return new TextEncoder().encode(JSON.stringify(ordered, null, 2) + '\n')
}

/** The artifacts in a file must be exactly those the manifest lists, in order, with those digests. */
export function checkArtifactsMatchManifest(
  artifacts: ReadonlyMap<string, Uint8Array>,
  listed: readonly { path: string; digest: string; size: number }[],
  digestOf: (b: Uint8Array) => string = sha256Digest,
): void {
  let i = 0
  for (const [path, data] of artifacts) {
    const want = listed[i++]
    if (!want) throw new ArtifactError(BundleErrorCode.Malformed, `artifact "${path}" is not in the manifest`)
    if (want.path !== path) throw new ArtifactError(BundleErrorCode.Malformed, `artifact "${path}" is out of manifest order`)
    if (want.size !== data.length || want.digest !== digestOf(data)) {
      throw new ArtifactError(BundleErrorCode.ArtifactDigestMismatch, `artifact "${path}" does not match the manifest digest`)
    }
  }
  if (i !== listed.length) {
    throw new ArtifactError(BundleErrorCode.ArtifactMissing, `artifact "${listed[i].path}" is listed in the manifest but missing`)
  }
}

/**
 * The trust policy: which publishers the operator trusts and what each may publish. Parsed and
 * compiled once (keys imported, patterns compiled); verification then only looks things up.
 *
 * Kinds default to wasm and quickjs: `native` runs unsandboxed in the host process, so a
 * publisher may only ship it when its entry lists `native` explicitly.
 */
import type { KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { Ajv, type ValidateFunction } from 'ajv'
import { CAPABILITIES, type Capability, type FilterDefinition, type Quotas } from '../pipeline/filter.ts'
import { ArtifactError, BundleErrorCode } from './errors.ts'
import { isKeyId, keyFingerprint, parsePublicKey } from './keys.ts'
import { QUOTAS_SCHEMA, type BundleManifest } from './manifest.ts'

export const TRUST_POLICY_VERSION = 1
const DEFAULT_KINDS: readonly FilterDefinition['kind'][] = ['wasm', 'quickjs']

/** A trust policy as written (JSON or YAML). See docs/trust-policy.md. */
export interface TrustPolicyDocument {
  version: 1
  publishers: PublisherDocument[]
}

export interface PublisherDocument {
  /** A name for humans, logs and `inspect`; unique in the policy. */
  name: string
  keys: {
    keyId: string
    /** SPKI PEM; or `publicKeyFile`, relative to the policy file. */
    publicKey?: string
    publicKeyFile?: string
    notBefore?: string
    notAfter?: string
  }[]
  /** Default `["wasm", "quickjs"]`; `native` only when listed. */
  kinds?: FilterDefinition['kind'][]
  /** Anchored globs over bundle names; `*` matches any run of characters. Default `["*"]`. */
  names?: string[]
  /** Default: every capability. */
  maxCapabilities?: Capability[]
  maxQuotas?: Quotas
  /** Window for all of this publisher's keys (a key's own window narrows it). */
  notBefore?: string
  notAfter?: string
}

export interface TrustedKey {
  keyId: string
  publicKey: KeyObject
  fingerprint: string
  notBefore?: Date
  notAfter?: Date
  publisher: Publisher
}

export interface Publisher {
  name: string
  kinds: ReadonlySet<FilterDefinition['kind']>
  namePatterns: readonly RegExp[]
  names: readonly string[]
  maxCapabilities: ReadonlySet<Capability>
  maxQuotas: Quotas
}

/** A compiled trust policy. Build with `compileTrustPolicy` or `loadTrustPolicy`. */
export interface TrustPolicy {
  readonly publishers: readonly Publisher[]
  /** Keys by key id hint. */
  readonly keys: ReadonlyMap<string, TrustedKey>
}

const dateString = { type: 'string', maxLength: 64 } as const

/** The trust policy's JSON Schema (draft-07). */
export const TRUST_POLICY_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  additionalProperties: false,
  required: ['version', 'publishers'],
  properties: {
    version: { const: TRUST_POLICY_VERSION },
    publishers: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'keys'],
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 128 },
          keys: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['keyId'],
              properties: {
                keyId: { type: 'string' },
                publicKey: { type: 'string' },
                publicKeyFile: { type: 'string' },
                notBefore: dateString,
                notAfter: dateString,
              },
            },
          },
          kinds: { type: 'array', uniqueItems: true, items: { enum: ['wasm', 'quickjs', 'native'] } },
          names: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 256 } },
          maxCapabilities: { type: 'array', uniqueItems: true, items: { enum: [...CAPABILITIES] } },
          maxQuotas: QUOTAS_SCHEMA,
          notBefore: dateString,
          notAfter: dateString,
          identities: { description: 'Reserved for CA-issued identities (MeshKit CA); not supported yet.' },
        },
      },
    },
  },
} as const

let validatePolicy: ValidateFunction | undefined

function policyError(message: string, cause?: unknown): ArtifactError {
  return new ArtifactError(BundleErrorCode.PolicyInvalid, `trust policy: ${message}`, cause === undefined ? undefined : { cause })
}

function parseDate(text: string | undefined, where: string): Date | undefined {
  if (text === undefined) return undefined
  const d = new Date(text)
  if (Number.isNaN(d.getTime())) throw policyError(`${where}: "${text}" is not a date`)
  return d
}

/** Anchored glob: `*` matches any run of characters, everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp('^' + glob.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('.*') + '$')
}

/**
 * Compiles a parsed policy document. `baseDir` resolves `publicKeyFile` entries.
 *
 * @example
 * const policy = await compileTrustPolicy({ version: 1, publishers: [{ name: 'acme', keys: [{ keyId: 'acme-1', publicKey: pem }] }] })
 */
export async function compileTrustPolicy(doc: unknown, baseDir: string = process.cwd()): Promise<TrustPolicy> {
  validatePolicy ??= new Ajv({ strict: false }).compile(TRUST_POLICY_SCHEMA)
  if (!validatePolicy(doc)) {
    const err = validatePolicy.errors?.[0]
    throw policyError(err ? `${err.instancePath || '/'} ${err.message}` : 'invalid')
  }
  const d = doc as TrustPolicyDocument
  const publishers: Publisher[] = []
  const keys = new Map<string, TrustedKey>()
  const names = new Set<string>()
  for (const p of d.publishers) {
    if (names.has(p.name)) throw policyError(`duplicate publisher "${p.name}"`)
    names.add(p.name)
    if ((p as { identities?: unknown }).identities !== undefined) {
      throw policyError(`publisher "${p.name}": CA identities are not supported yet`)
    }
    const publisher: Publisher = {
      name: p.name,
      kinds: new Set(p.kinds ?? DEFAULT_KINDS),
      names: p.names ?? ['*'],
      namePatterns: (p.names ?? ['*']).map(globToRegExp),
      maxCapabilities: new Set(p.maxCapabilities ?? CAPABILITIES),
      maxQuotas: { ...p.maxQuotas },
    }
    publishers.push(publisher)
    const pubFrom = parseDate(p.notBefore, `publisher "${p.name}" notBefore`)
    const pubTo = parseDate(p.notAfter, `publisher "${p.name}" notAfter`)
    for (const k of p.keys) {
      if (!isKeyId(k.keyId)) throw policyError(`publisher "${p.name}": invalid key id "${k.keyId}"`)
      if (keys.has(k.keyId)) throw policyError(`key id "${k.keyId}" is listed twice`)
      if ((k.publicKey === undefined) === (k.publicKeyFile === undefined)) {
        throw policyError(`key "${k.keyId}": give exactly one of publicKey, publicKeyFile`)
      }
      let pem = k.publicKey
      if (k.publicKeyFile !== undefined) {
        try {
          pem = await readFile(resolve(baseDir, k.publicKeyFile), 'utf8')
        } catch (e) {
          throw policyError(`key "${k.keyId}": cannot read ${k.publicKeyFile}`, e)
        }
      }
      let publicKey: KeyObject
      try {
        publicKey = parsePublicKey(pem as string)
      } catch (e) {
        throw policyError(`key "${k.keyId}": ${(e as Error).message}`, e)
      }
      const from = latest(pubFrom, parseDate(k.notBefore, `key "${k.keyId}" notBefore`))
      const to = earliest(pubTo, parseDate(k.notAfter, `key "${k.keyId}" notAfter`))
      keys.set(k.keyId, { keyId: k.keyId, publicKey, fingerprint: keyFingerprint(publicKey), notBefore: from, notAfter: to, publisher })
    }
  }
  return { publishers, keys }
}

function latest(a: Date | undefined, b: Date | undefined): Date | undefined {
  return a && b ? (a > b ? a : b) : (a ?? b)
}
function earliest(a: Date | undefined, b: Date | undefined): Date | undefined {
  return a && b ? (a < b ? a : b) : (a ?? b)
}

/** Reads a policy file (YAML or JSON) and compiles it; key files resolve against its folder. */
export async function loadTrustPolicy(file: string): Promise<TrustPolicy> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    throw new ArtifactError(BundleErrorCode.PolicyMissing, `cannot read trust policy ${file}`, { cause: e })
  }
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (e) {
    throw policyError('not YAML/JSON', e)
  }
  return compileTrustPolicy(doc, dirname(resolve(file)))
}

/** The key for a hint, or `unknown_signer`. */
export function trustedKeyFor(policy: TrustPolicy, keyId: string): TrustedKey {
  const key = policy.keys.get(keyId)
  if (!key) throw new ArtifactError(BundleErrorCode.UnknownSigner, `signer key "${keyId}" is not in the trust policy`)
  return key
}

/** Refuses a key outside its validity window at `now`. */
export function checkKeyWindow(key: TrustedKey, now: Date): void {
  if (key.notBefore && now < key.notBefore) {
    throw new ArtifactError(BundleErrorCode.KeyNotYetValid, `key "${key.keyId}" is valid from ${key.notBefore.toISOString()}`)
  }
  if (key.notAfter && now > key.notAfter) {
    throw new ArtifactError(BundleErrorCode.KeyExpired, `key "${key.keyId}" expired at ${key.notAfter.toISOString()}`)
  }
}

/** Whether a key is valid at a given time (used as the Sigstore key finder's `validFor`). */
export function keyValidAt(key: TrustedKey, at: Date): boolean {
  return !(key.notBefore && at < key.notBefore) && !(key.notAfter && at > key.notAfter)
}

/**
 * Checks what the publisher may publish: kind, name, capabilities, quota maximums.
 * Returns the effective quota maximum (the smaller of manifest and publisher maximums).
 */
export function checkPublisherAllows(publisher: Publisher, m: BundleManifest): Quotas {
  if (!publisher.kinds.has(m.kind)) {
    throw new ArtifactError(
      BundleErrorCode.KindNotAllowed,
      m.kind === 'native'
        ? `publisher "${publisher.name}" is not granted kind native (needs an explicit grant)`
        : `publisher "${publisher.name}" may not publish kind ${m.kind}`,
    )
  }
  if (!publisher.namePatterns.some((re) => re.test(m.name))) {
    throw new ArtifactError(BundleErrorCode.NameNotAllowed, `publisher "${publisher.name}" may not publish "${m.name}"`)
  }
  const extra = m.capabilities.filter((c) => !publisher.maxCapabilities.has(c))
  if (extra.length > 0) {
    throw new ArtifactError(BundleErrorCode.CapabilityNotAllowed, `publisher "${publisher.name}" may not grant ${extra.join(', ')}`)
  }
  const max: Quotas = { ...m.quotas.maximum }
  for (const k of Object.keys(publisher.maxQuotas) as (keyof Quotas)[]) {
    const limit = publisher.maxQuotas[k] as number
    const asked = m.quotas.maximum[k]
    const dflt = m.quotas.default[k]
    if ((asked !== undefined && asked > limit) || (dflt !== undefined && dflt > limit)) {
      throw new ArtifactError(BundleErrorCode.QuotaNotAllowed, `publisher "${publisher.name}" may not allow ${k} above ${limit}`)
    }
    max[k] = asked === undefined ? limit : Math.min(asked, limit)
  }
  return max
}

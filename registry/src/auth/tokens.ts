/**
 * Publisher API tokens. A token is 32 random bytes (`mkr_<base64url>`); the registry keeps
 * only its sha256, so a stolen database yields no usable token. A plain hash (not a slow KDF)
 * is enough because tokens are high-entropy, never passwords.
 *
 * Each token carries name patterns (anchored globs, as in trust policies) and scopes:
 * - `read`: list, show, download (when reads are token-protected);
 * - `publish`: publish and yank names matching its patterns;
 * - `admin`: everything, including revocations, tokens and the audit log.
 */
import { createHash, randomBytes } from 'node:crypto'
import { globToRegExp } from '@omnirelay/runtime/bundles/trust-policy.ts'
import { RegistryError, RegistryErrorCode } from '../errors.ts'
import type { MetadataStore, TokenRecord } from '../storage/metadata.ts'

export const SCOPES = ['read', 'publish', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

const TOKEN_PREFIX = 'mkr_'
const TOKEN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** A token as given to `startRegistry` (plaintext, e.g. from an env var or a secret file). */
export interface TokenGrant {
  id: string
  token: string
  /** Name patterns the token may publish/yank. Default `["*"]`. */
  names?: string[]
  /** Default `["read", "publish"]`. */
  scopes?: Scope[]
}

/** Who made a request. `id` goes into the audit log as `token:<id>` (never the token). */
export interface Principal {
  readonly actor: string
  readonly scopes: ReadonlySet<string>
  readonly namePatterns: readonly RegExp[]
}

export const ANONYMOUS: Principal = { actor: 'anonymous', scopes: new Set(), namePatterns: [] }
/** The local operator (CLI on the data directory): full rights. */
export const LOCAL_OPERATOR: Principal = { actor: 'local', scopes: new Set(['admin']), namePatterns: [/^/] }

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

/**
 * Makes a fresh token. Show it once; store only `hashToken(token)`.
 *
 * @example
 * const token = generateToken() // 'mkr_4f…'
 */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url')
}

export function tokenRecord(grant: TokenGrant, now: Date = new Date()): TokenRecord {
  if (!TOKEN_ID.test(grant.id)) throw new RegistryError(RegistryErrorCode.BadRequest, `invalid token id "${grant.id}"`)
  if (grant.token.length < 16) throw new RegistryError(RegistryErrorCode.BadRequest, `token "${grant.id}" is too short (16 characters at least)`)
  const scopes = grant.scopes ?? ['read', 'publish']
  for (const s of scopes) if (!(SCOPES as readonly string[]).includes(s)) throw new RegistryError(RegistryErrorCode.BadRequest, `unknown scope "${s}"`)
  return { id: grant.id, hash: hashToken(grant.token), names: grant.names ?? ['*'], scopes, createdAt: now.toISOString() }
}

/** Resolves an `Authorization: Bearer <token>` header to a principal. */
export function authenticate(store: MetadataStore, header: string | undefined): Principal {
  if (header === undefined || header === '') return ANONYMOUS
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
  if (!m) throw new RegistryError(RegistryErrorCode.Unauthorized, 'Authorization must be "Bearer <token>"', { status: 401 })
  const rec = store.tokenByHash(hashToken(m[1] as string))
  if (!rec) throw new RegistryError(RegistryErrorCode.Unauthorized, 'unknown token', { status: 401 })
  return { actor: `token:${rec.id}`, scopes: new Set(rec.scopes), namePatterns: rec.names.map(globToRegExp) }
}

/** Refuses unless the principal holds `scope` (admin holds all) and, when given, may act on `name`. */
export function authorize(p: Principal, scope: Scope, name?: string): void {
  const admin = p.scopes.has('admin')
  if (!admin && !p.scopes.has(scope)) {
    throw new RegistryError(p === ANONYMOUS ? RegistryErrorCode.Unauthorized : RegistryErrorCode.Forbidden, `needs scope "${scope}"`, {
      status: p === ANONYMOUS ? 401 : 403,
    })
  }
  if (name !== undefined && !admin && !p.namePatterns.some((re) => re.test(name))) {
    throw new RegistryError(RegistryErrorCode.Forbidden, `${p.actor} may not act on "${name}"`, { status: 403 })
  }
}

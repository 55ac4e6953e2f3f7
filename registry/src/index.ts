/**
 * @meshkit/registry: admission of signed bundles, storage, HTTP API, audit trail.
 *
 * @example
 * import { startRegistry } from '@meshkit/registry'
 * const reg = await startRegistry({ dataDir: './data', trustPolicy: './trust-policy.yaml', tokens: [{ id: 'ci', token: process.env.TOKEN!, names: ['acme-*'] }] })
 * console.log(reg.url) // http://127.0.0.1:7070
 * await reg.close()
 */
import { serve, type ApiOptions, type RunningRegistry } from './api/server.ts'
import { Registry, type RegistryOptions } from './registry.ts'

export interface StartOptions extends RegistryOptions, ApiOptions {
  /** Default 0 (any free port). */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
}

/** Opens the registry on `dataDir` and serves its API. `close()` stops the server and the database. */
export async function startRegistry(opts: StartOptions): Promise<RunningRegistry> {
  const registry = await Registry.open(opts)
  try {
    const running = await serve(registry, opts.port ?? 0, opts.host ?? '127.0.0.1', opts)
    registry.warm()
    return running
  } catch (e) {
    registry.close()
    throw e
  }
}

export { Registry, MEDIA_TYPE_BUNDLE, MEDIA_TYPE_WASM } from './registry.ts'
export type { RegistryOptions, PublishResult, BlobHandle } from './registry.ts'
export type { RunningRegistry, ApiOptions } from './api/server.ts'
export { createHandler } from './api/server.ts'
export { publishBundle, registryRequest, RegistryClientError } from './client/publish.ts'
export type { PublishOutcome } from './client/publish.ts'
export { pollRevocations, type RevocationList, type RevocationPoll } from './client/revocations.ts'
export { RegistryError, RegistryErrorCode, AdmissionStep } from './errors.ts'
export { DEFAULT_ADMISSION_POLICY, type AdmissionPolicy } from './admission/policy.ts'
export { SAMPLES_ARTIFACT, DEFAULT_CORPUS } from './admission/samples.ts'
export { generateToken, hashToken, type TokenGrant, type Scope } from './auth/tokens.ts'
export { registryCommand } from './cli/index.ts'

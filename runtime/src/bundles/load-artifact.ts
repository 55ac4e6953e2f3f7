/**
 * Turns a filter definition into verified module bytes. This is the only place the host
 * reads filter code from disk: signed bundles are verified here before anything loads.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { FilterDefinition, LoadedArtifact } from '../pipeline/filter.ts'

export interface LoadArtifactOptions {
  /** Directory that relative paths in config are resolved against. */
  baseDir: string
  /** Development only: allow `module:` plain files with no signature. */
  allowUnsigned: boolean
}

export class ArtifactError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'ArtifactError'
    this.code = code
  }
}

export async function loadArtifact(def: FilterDefinition, opts: LoadArtifactOptions): Promise<LoadedArtifact> {
  if (def.bundle) {
    throw new ArtifactError('bundle_unsupported', `filter "${def.name}": signed bundles are not supported yet`)
  }
  if (!def.module) throw new ArtifactError('no_artifact', `filter "${def.name}": needs a bundle or a module`)
  if (!opts.allowUnsigned) {
    throw new ArtifactError(
      'unsigned_refused',
      `filter "${def.name}": plain module "${def.module}" refused: only signed bundles load unless allowUnsigned is set`,
    )
  }
  const file = resolve(opts.baseDir, def.module)
  const bytes = new Uint8Array(await readFile(file))
  return {
    kind: def.kind,
    bytes,
    digest: createHash('sha256').update(bytes).digest('hex'),
    entry: def.kind === 'native' ? file : undefined,
    capabilities: def.capabilities,
    unsigned: true,
  }
}

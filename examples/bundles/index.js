// For example setups (e.g. examples/edge/start.js): the signed example bundles as filter
// definitions, pinned by digest, plus the trust policy that verifies them. Written by
// build.js (`npm run build`); undefined when the bundles have not been built yet.
//
//   import { exampleBundles } from '../bundles/index.js'
//   const b = exampleBundles()
//   if (b) config = { ...config, trustPolicy: b.trustPolicy, filters: [...config.filters ?? [], ...b.filters] }
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const built = join(dirname(fileURLToPath(import.meta.url)), 'build', 'filters.json')

/** @returns {{ trustPolicy: string, filters: { name: string, kind: string, bundle: { path: string, digest: string }, capabilities: string[] }[] } | undefined} */
export function exampleBundles() {
  if (!existsSync(built)) return undefined
  return JSON.parse(readFileSync(built, 'utf8'))
}

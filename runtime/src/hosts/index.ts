/**
 * The extension hosts by kind. Loaded lazily so a config with no QuickJS filter never pays
 * for the QuickJS engine (and likewise for binaryen and the Wasm host).
 */
import type { FilterDefinition } from '../pipeline/filter.ts'
import type { ExtensionHost } from './host-services.ts'

const loaders: Record<FilterDefinition['kind'], () => Promise<{ host: ExtensionHost }>> = {
  wasm: () => import('./wasm/index.ts'),
  quickjs: () => import('./quickjs/index.ts'),
  native: () => import('./native/index.ts'),
}

export async function hostFor(kind: FilterDefinition['kind']): Promise<ExtensionHost> {
  return (await loaders[kind]()).host
}

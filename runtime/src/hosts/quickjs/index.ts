/**
 * The QuickJS extension host: JavaScript filter modules run in quickjs-emscripten
 * (release-sync), each filter in its own metered, memory-capped engine instance.
 * See docs/quickjs-filters.md for the filter author's API.
 *
 * @example
 * const factory = await host.createFactory(def, { kind: 'quickjs', bytes, digest, capabilities, unsigned: true }, services)
 * const filter = factory.createStream(stream)
 * filter.onRequestHeaders?.(true)
 */
import type { ExtensionHost } from '../host-services.ts'
import { QuickJsFilterFactory, type QuickJsHostOptions } from './factory.ts'

export { QUICKJS_DEFAULTS, QuickJsFilterFactory, QuickJsLoadError, type QuickJsHostOptions } from './factory.ts'
export { meteredEngineModule } from './engine.ts'

/** A QuickJS host with non-default options (benchmarks: `{ meter: false }`). */
export function createQuickJsHost(opts: QuickJsHostOptions = {}): ExtensionHost {
  return {
    kind: 'quickjs',
    createFactory: (def, artifact, services, build) => QuickJsFilterFactory.create(def, artifact, services, build ? { ...opts, ...build } : opts),
  }
}

export const host: ExtensionHost = createQuickJsHost()

/**
 * The native extension host: trusted, in-process JS/TS filter modules with the same hooks
 * and API as QuickJS filters (docs/quickjs-filters.md), for code that must not pay the
 * sandbox's cost. UNSANDBOXED: loaded only when the host config enables native filters
 * (`HostServices.allowNative`), and from bundles only when signed by a key trusted for native.
 *
 * @example
 * const factory = await host.createFactory(def, { kind: 'native', entry: '/srv/filters/auth.mjs', ... }, { ...services, allowNative: true })
 */
import type { ExtensionHost } from '../host-services.ts'
import { NativeFilterFactory } from './factory.ts'

export { NATIVE_DEFAULTS, NativeFilterFactory, NativeLoadError } from './factory.ts'
export type { FilterContext, MessageView, HeadersView, CalloutResult } from './views.ts'

export const host: ExtensionHost = {
  kind: 'native',
  createFactory: (def, artifact, services) => NativeFilterFactory.create(def, artifact, services),
}

/** OmniRelay's side of xDS above the protocol: resources -> proxy config, bundle fetch, last-known-good. */
export { startXdsProxy, type XdsProxy, type XdsProxyOptions, type ConfigSource } from './xds-proxy.ts'
export { BundleStore, type BundleStoreOptions } from './bundle-store.ts'
export { LastKnownGood, type LkgRecord } from './last-known-good.ts'
export { ApplyError, ApplyErrorCode } from './errors.ts'

/** The mesh config (what central holds per group) and its mapping to xDS resources and to a proxy config. */
export * from './mesh-config.ts'
export { meshToResources, resourcesToMesh, decodeWire, MappingError, METADATA_KEY, HCM_TYPE, type WireResource, type HeldResources } from './wire.ts'
export { meshToProxyDoc, routeDoc, type LocalSettings } from './proxy-doc.ts'

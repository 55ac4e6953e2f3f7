/** MeshKit's xDS control protocol: a transport-agnostic snapshot cache and the gRPC ADS servers that adapt it. */
export * from './cache/index.ts'
export * from './server/index.ts'
export { TypeUrl, DELIVERY_ORDER } from '@omnirelay/runtime/xds/type-urls.ts'

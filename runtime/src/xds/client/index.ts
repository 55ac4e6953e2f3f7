export { createXdsClient, type XdsClient, type XdsClientNode, type XdsClientOptions, type XdsClientStatus, type XdsConnectionState, type XdsUpdate, type ReceivedResource, type XdsEpochBatch } from './xds-client.ts'
export { Backoff, type BackoffOptions } from './backoff.ts'
export { XdsClientError, XdsClientErrorCode } from './errors.ts'
export { loadXdsBootstrap, parseXdsBootstrap, type XdsBootstrap } from './bootstrap.ts'

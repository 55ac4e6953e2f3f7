/** OmniRelay's xDS layer: the protocol client, the wire codecs, and OmniRelay's typed resources. */
export * from './client/index.ts'
export { TypeUrl, DELIVERY_ORDER, EPOCH_RESOURCE_NAME, isFullStateType, compareDelivery } from './type-urls.ts'
export { decodeResource, encodeResource, ResourceCodecError } from './proto/resource-codec.ts'
export { structToJson, jsonToStruct, type JsonValue } from './proto/struct.ts'
export type { XdsNode } from './proto/messages.ts'

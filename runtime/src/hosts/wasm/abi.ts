/**
 * The numbers of proxy-wasm ABI v0.2.1 (proxy-wasm/spec abi-versions/v0.2.1) that cross the
 * host/module boundary. Fixed by the spec: never renumber.
 */

/** `proxy_status_t` (the spec lists the subset it uses; the rest are Envoy/proxy-wasm-cpp-host WasmResult values with the same numbers). */
export const WasmResult = {
  Ok: 0,
  /** A key, buffer, map or queue that is not there (or not available in this context). */
  NotFound: 1,
  /** An argument out of range, an unknown enum value, an unknown context. */
  BadArgument: 2,
  SerializationFailure: 3,
  ParseFailure: 4,
  BadExpression: 5,
  /** A pointer/size pair outside the module's memory, or a failed in-module allocation. */
  InvalidMemoryAccess: 6,
  /** Nothing to dequeue. */
  Empty: 7,
  CasMismatch: 8,
  ResultMismatch: 9,
  InternalFailure: 10,
  BrokenConnection: 11,
  Unimplemented: 12,
} as const
export type WasmResult = (typeof WasmResult)[keyof typeof WasmResult]

/** `wasi_errno_t` values used by the WASI subset. */
export const WasiErrno = {
  Success: 0,
  Badf: 8,
  Fault: 21,
  Inval: 28,
  Nosys: 52,
  Notsup: 58,
} as const

/** `proxy_log_level_t` */
export const LogLevel = { Trace: 0, Debug: 1, Info: 2, Warn: 3, Error: 4, Critical: 5 } as const

/** `proxy_action_t`; any non-zero value stops iteration (v0.1.0 modules also return 3/4). */
export const Action = { Continue: 0, Pause: 1 } as const

/** `proxy_buffer_type_t` */
export const BufferType = {
  HttpRequestBody: 0,
  HttpResponseBody: 1,
  DownstreamData: 2,
  UpstreamData: 3,
  HttpCallResponseBody: 4,
  GrpcReceiveBuffer: 5,
  VmConfiguration: 6,
  PluginConfiguration: 7,
  CallData: 8,
} as const

/** `proxy_map_type_t` */
export const MapType = {
  HttpRequestHeaders: 0,
  HttpRequestTrailers: 1,
  HttpResponseHeaders: 2,
  HttpResponseTrailers: 3,
  GrpcReceiveInitialMetadata: 4,
  GrpcReceiveTrailingMetadata: 5,
  HttpCallResponseHeaders: 6,
  HttpCallResponseTrailers: 7,
} as const

/** `proxy_stream_type_t` */
export const StreamType = { HttpRequest: 0, HttpResponse: 1, Downstream: 2, Upstream: 3 } as const

/** `proxy_metric_type_t` */
export const MetricType = { Counter: 0, Gauge: 1, Histogram: 2 } as const

/** Exports that advertise the ABI version (the spec's linking markers). */
export const ABI_MARKERS = ['proxy_abi_version_0_2_1', 'proxy_abi_version_0_2_0', 'proxy_abi_version_0_1_0'] as const

/** The root (plugin) context id this host gives every VM. Stream contexts count up from 2. */
export const ROOT_CONTEXT_ID = 1

/**
 * OmniRelay's addition to the exports a module may have: proxy_on_context_create followed by
 * proxy_on_request_headers, as one entry point `(context_id, root_context_id, num_headers,
 * end_of_stream, deleted_context_id) -> action` (sdk-as exports it). Other hosts ignore it and
 * call the two. `deleted_context_id`, when not 0, is an earlier context to delete first (as
 * proxy_on_delete would), see {@link DEFERRED_DELETE}; modules with four parameters get none.
 */
export const CREATE_AND_REQUEST_HEADERS = 'omnirelay_on_context_create_request_headers'

/**
 * A marker export (never called): the module's proxy_on_delete does nothing the stream could
 * still observe, so the host may hand a finished stream's delete to the next stream start
 * ({@link CREATE_AND_REQUEST_HEADERS}'s last parameter) instead of calling into the module
 * once more per request. sdk-as exports it unless a context overrides `onDelete`.
 */
export const DEFERRED_DELETE = 'omnirelay_deferred_delete'

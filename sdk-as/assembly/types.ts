// Numbers shared with the host: proxy-wasm ABI v0.2.1 ("Types" section of the spec).
// These values cross the sandbox boundary; never renumber them.

/** `proxy_status_t`: what every host call returns. */
export enum Status {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
  SerializationFailure = 3,
  ParseFailure = 4,
  InvalidMemoryAccess = 6,
  Empty = 7,
  CasMismatch = 8,
  InternalFailure = 10,
  Unimplemented = 12,
}

/**
 * `proxy_action_t`: what an HTTP callback tells the host to do next.
 *
 * - `Continue`: hand the headers/body/trailers on to the next filter.
 * - `Pause`: stop iterating; the filter resumes later with `resumeRequest()`/`resumeResponse()`
 *   (e.g. after an HTTP callout), or has already sent a local response.
 */
export enum Action {
  Continue = 0,
  Pause = 1,
}

/** `proxy_log_level_t`. */
export enum LogLevel {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
  Critical = 5,
}

/** `proxy_buffer_type_t`. */
export enum BufferType {
  HttpRequestBody = 0,
  HttpResponseBody = 1,
  DownstreamData = 2,
  UpstreamData = 3,
  HttpCallResponseBody = 4,
  GrpcCallMessage = 5,
  VmConfiguration = 6,
  PluginConfiguration = 7,
  ForeignFunctionArguments = 8,
}

/** `proxy_map_type_t`. */
export enum MapType {
  HttpRequestHeaders = 0,
  HttpRequestTrailers = 1,
  HttpResponseHeaders = 2,
  HttpResponseTrailers = 3,
  GrpcCallInitialMetadata = 4,
  GrpcCallTrailingMetadata = 5,
  HttpCallResponseHeaders = 6,
  HttpCallResponseTrailers = 7,
}

/** `proxy_stream_type_t`. */
export enum StreamType {
  HttpRequest = 0,
  HttpResponse = 1,
  Downstream = 2,
  Upstream = 3,
}

/** `proxy_metric_type_t`. */
export enum MetricType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}

/** `proxy_peer_type_t`. */
export enum PeerType {
  Unknown = 0,
  Local = 1,
  Remote = 2,
}

/** One HTTP header (or trailer, or gRPC metadata entry). Names are lower-case on HTTP/2 and in OmniRelay. */
export class Header {
  constructor(public name: string, public value: string) {}
}

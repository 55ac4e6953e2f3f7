// The only door to the host. Raw proxy-wasm ABI v0.2.1 imports (module "env") and the thin
// safe wrappers the rest of the SDK uses. Nothing else in the SDK declares an import.
//
// AssemblyScript emits an import only when it is called, so a filter imports exactly the host
// functions it uses: that is what capability checks at load time see.
//
// Memory protocol: the host returns data by calling `proxy_on_memory_allocate` (our `heap.alloc`)
// and writing the pointer/size into the `return_*` slots below. We copy the bytes into managed
// memory and `heap.free` the host's block at once, so no host allocation outlives a call.

import { BufferType, Header, LogLevel, MapType, MetricType, Status, StreamType } from "./types";

// ---- raw imports ---------------------------------------------------------------------------

@external("env", "proxy_log")
declare function proxy_log(level: i32, messageData: usize, messageSize: usize): i32;
@external("env", "proxy_get_log_level")
declare function proxy_get_log_level(returnLevel: usize): i32;
@external("env", "proxy_get_current_time_nanoseconds")
declare function proxy_get_current_time_nanoseconds(returnTime: usize): i32;
@external("env", "proxy_set_tick_period_milliseconds")
declare function proxy_set_tick_period_milliseconds(period: u32): i32;
@external("env", "proxy_done")
declare function proxy_done(): i32;
@external("env", "proxy_set_effective_context")
declare function proxy_set_effective_context(contextId: u32): i32;

@external("env", "proxy_get_buffer_bytes")
declare function proxy_get_buffer_bytes(bufferType: i32, start: usize, maxSize: usize, returnData: usize, returnSize: usize): i32;
@external("env", "proxy_get_buffer_status")
declare function proxy_get_buffer_status(bufferType: i32, returnSize: usize, returnFlags: usize): i32;
@external("env", "proxy_set_buffer_bytes")
declare function proxy_set_buffer_bytes(bufferType: i32, start: usize, size: usize, data: usize, dataSize: usize): i32;

@external("env", "proxy_get_header_map_size")
declare function proxy_get_header_map_size(mapType: i32, returnSize: usize): i32;
@external("env", "proxy_get_header_map_pairs")
declare function proxy_get_header_map_pairs(mapType: i32, returnData: usize, returnSize: usize): i32;
@external("env", "proxy_set_header_map_pairs")
declare function proxy_set_header_map_pairs(mapType: i32, data: usize, size: usize): i32;
@external("env", "proxy_get_header_map_value")
declare function proxy_get_header_map_value(mapType: i32, keyData: usize, keySize: usize, returnData: usize, returnSize: usize): i32;
@external("env", "proxy_add_header_map_value")
declare function proxy_add_header_map_value(mapType: i32, keyData: usize, keySize: usize, valueData: usize, valueSize: usize): i32;
@external("env", "proxy_replace_header_map_value")
declare function proxy_replace_header_map_value(mapType: i32, keyData: usize, keySize: usize, valueData: usize, valueSize: usize): i32;
@external("env", "proxy_remove_header_map_value")
declare function proxy_remove_header_map_value(mapType: i32, keyData: usize, keySize: usize): i32;

@external("env", "proxy_continue_stream")
declare function proxy_continue_stream(streamType: i32): i32;
@external("env", "proxy_close_stream")
declare function proxy_close_stream(streamType: i32): i32;
@external("env", "proxy_send_local_response")
declare function proxy_send_local_response(
  statusCode: u32, detailsData: usize, detailsSize: usize, bodyData: usize, bodySize: usize,
  headersData: usize, headersSize: usize, grpcStatus: i32): i32;

@external("env", "proxy_http_call")
declare function proxy_http_call(
  upstreamData: usize, upstreamSize: usize, headersData: usize, headersSize: usize,
  bodyData: usize, bodySize: usize, trailersData: usize, trailersSize: usize,
  timeoutMs: u32, returnToken: usize): i32;

@external("env", "proxy_set_shared_data")
declare function proxy_set_shared_data(keyData: usize, keySize: usize, valueData: usize, valueSize: usize, cas: u32): i32;
@external("env", "proxy_get_shared_data")
declare function proxy_get_shared_data(keyData: usize, keySize: usize, returnData: usize, returnSize: usize, returnCas: usize): i32;

@external("env", "proxy_register_shared_queue")
declare function proxy_register_shared_queue(nameData: usize, nameSize: usize, returnId: usize): i32;
@external("env", "proxy_resolve_shared_queue")
declare function proxy_resolve_shared_queue(vmIdData: usize, vmIdSize: usize, nameData: usize, nameSize: usize, returnId: usize): i32;
@external("env", "proxy_enqueue_shared_queue")
declare function proxy_enqueue_shared_queue(queueId: u32, data: usize, size: usize): i32;
@external("env", "proxy_dequeue_shared_queue")
declare function proxy_dequeue_shared_queue(queueId: u32, returnData: usize, returnSize: usize): i32;

@external("env", "proxy_define_metric")
declare function proxy_define_metric(metricType: i32, nameData: usize, nameSize: usize, returnId: usize): i32;
@external("env", "proxy_increment_metric")
declare function proxy_increment_metric(metricId: u32, delta: i64): i32;
@external("env", "proxy_record_metric")
declare function proxy_record_metric(metricId: u32, value: u64): i32;
@external("env", "proxy_get_metric")
declare function proxy_get_metric(metricId: u32, returnValue: usize): i32;

@external("env", "proxy_get_property")
declare function proxy_get_property(pathData: usize, pathSize: usize, returnData: usize, returnSize: usize): i32;
@external("env", "proxy_set_property")
declare function proxy_set_property(pathData: usize, pathSize: usize, valueData: usize, valueSize: usize): i32;

// ---- return slots --------------------------------------------------------------------------

// Static, 8-byte aligned scratch for the host's `return_*` out-parameters. Single-threaded VM:
// no call is ever interrupted by another call of ours.
const RET: usize = memory.data(24, 8);
const RET_PTR: usize = RET; // u32 pointer
const RET_SIZE: usize = RET + 4; // u32 size
const RET_U32: usize = RET + 8; // u32 (cas, id, token, level)
const RET_U64: usize = RET + 16; // u64 (time, metric value)

/** Takes ownership of the block the host wrote into the return slots: copies it out and frees it. */
function takeBytes(): ArrayBuffer {
  const ptr = load<usize>(RET_PTR);
  const size = load<usize>(RET_SIZE);
  const out = new ArrayBuffer(<i32>size);
  if (ptr != 0) {
    memory.copy(changetype<usize>(out), ptr, size);
    heap.free(ptr);
  }
  return out;
}

function takeString(): string {
  const ptr = load<usize>(RET_PTR);
  const size = load<usize>(RET_SIZE);
  if (ptr == 0) return "";
  const out = String.UTF8.decodeUnsafe(ptr, size);
  heap.free(ptr);
  return out;
}

function clearReturn(): void {
  store<u32>(RET_PTR, 0);
  store<u32>(RET_SIZE, 0);
}

@inline function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

// Strings passed to the host are UTF-8 encoded into one reusable, unmanaged scratch area:
// no garbage per header operation or log line (the GC's work is fuel the filter pays for).
// Safe because a host call never calls back into code that encodes (the only callback
// during a host call is proxy_on_memory_allocate).
let scratch: usize = 0;
let scratchSize: usize = 0;
/** UTF-8 lengths of the strings the last `encode*` wrote. */
let len0: usize = 0;
let len1: usize = 0;

function reserve(size: usize): usize {
  if (size > scratchSize) {
    let n: usize = scratchSize == 0 ? 256 : scratchSize;
    while (n < size) n <<= 1;
    scratch = scratch == 0 ? heap.alloc(n) : heap.realloc(scratch, n);
    scratchSize = n;
  }
  return scratch;
}

/** Encodes `a` into scratch; returns its address, length in `len0`. */
function encode1(a: string): usize {
  const p = reserve(<usize>a.length * 3);
  len0 = String.UTF8.encodeUnsafe(changetype<usize>(a), a.length, p);
  return p;
}

/** Encodes `a` then `b` into scratch; returns the address of `a` (b follows at +len0), lengths in `len0`/`len1`. */
function encode2(a: string, b: string): usize {
  const p = reserve((<usize>a.length + <usize>b.length) * 3);
  len0 = String.UTF8.encodeUnsafe(changetype<usize>(a), a.length, p);
  len1 = String.UTF8.encodeUnsafe(changetype<usize>(b), b.length, p + len0);
  return p;
}

@inline function ptrOf(b: ArrayBuffer | null): usize {
  return b === null ? 0 : changetype<usize>(b);
}

@inline function lenOf(b: ArrayBuffer | null): usize {
  return b === null ? 0 : <usize>b.byteLength;
}

// ---- logging, time, lifecycle --------------------------------------------------------------

/** Logs `message` at `level`. Returns the host's status. */
export function log(level: LogLevel, message: string): Status {
  const p = encode1(message);
  return <Status>proxy_log(level, p, len0);
}

/** The host's current log level (`Info` if the host will not tell). */
export function getLogLevel(): LogLevel {
  if (proxy_get_log_level(RET_U32) != Status.Ok) return LogLevel.Info;
  return <LogLevel>load<u32>(RET_U32);
}

/** Wall-clock time in nanoseconds since the Unix epoch (hosts may freeze it per callback). */
export function currentTimeNanos(): u64 {
  if (proxy_get_current_time_nanoseconds(RET_U64) != Status.Ok) return 0;
  return load<u64>(RET_U64);
}

/** Calls `proxy_on_tick` on the root context every `ms` milliseconds; 0 stops the timer. */
export function setTickPeriodMilliseconds(ms: u32): Status {
  return <Status>proxy_set_tick_period_milliseconds(ms);
}

/** Tells the host a context that returned `false` from `onDone` is now finished. */
export function done(): Status {
  return <Status>proxy_done();
}

/** Makes `contextId` the context later host calls act on (used when a callback arrives on another context). */
export function setEffectiveContext(contextId: u32): Status {
  return <Status>proxy_set_effective_context(contextId);
}

// ---- buffers -------------------------------------------------------------------------------

/** Up to `maxSize` bytes of buffer `type` from `start`; null when the buffer is not available. */
export function getBufferBytes(type: BufferType, start: usize, maxSize: usize): ArrayBuffer | null {
  clearReturn();
  const s = proxy_get_buffer_bytes(type, start, maxSize, RET_PTR, RET_SIZE);
  if (s != Status.Ok) return null;
  return takeBytes();
}

/** Size of buffer `type`, or -1 when it is not available. */
export function getBufferSize(type: BufferType): i64 {
  const s = proxy_get_buffer_status(type, RET_SIZE, RET_U32);
  if (s != Status.Ok) return -1;
  return <i64>load<u32>(RET_SIZE);
}

/** Replaces `size` bytes at `start` of buffer `type` with `data`. */
export function setBufferBytes(type: BufferType, start: usize, size: usize, data: ArrayBuffer): Status {
  return <Status>proxy_set_buffer_bytes(type, start, size, changetype<usize>(data), data.byteLength);
}

// ---- header maps ---------------------------------------------------------------------------

/**
 * Serializes pairs the way the ABI wants ("Serialization" in the spec): u32 count, then
 * u32 name/value lengths per pair, then each name and value followed by a NUL byte.
 */
export function serializeHeaders(headers: Array<Header>): ArrayBuffer {
  const n = headers.length;
  const names = new Array<ArrayBuffer>(n);
  const values = new Array<ArrayBuffer>(n);
  let size: i32 = 4 + n * 8;
  for (let i = 0; i < n; i++) {
    const k = utf8(headers[i].name);
    const v = utf8(headers[i].value);
    names[i] = k;
    values[i] = v;
    size += k.byteLength + v.byteLength + 2;
  }
  const out = new ArrayBuffer(size);
  const base = changetype<usize>(out);
  store<u32>(base, <u32>n);
  let p = base + 4;
  for (let i = 0; i < n; i++) {
    store<u32>(p, <u32>names[i].byteLength);
    store<u32>(p + 4, <u32>values[i].byteLength);
    p += 8;
  }
  for (let i = 0; i < n; i++) {
    const k = names[i];
    memory.copy(p, changetype<usize>(k), k.byteLength);
    p += k.byteLength;
    store<u8>(p++, 0);
    const v = values[i];
    memory.copy(p, changetype<usize>(v), v.byteLength);
    p += v.byteLength;
    store<u8>(p++, 0);
  }
  return out;
}

/** Parses a serialized map. Malformed input yields the pairs that were well formed, never a trap. */
export function deserializeHeaders(ptr: usize, size: usize): Array<Header> {
  const out = new Array<Header>();
  if (ptr == 0 || size < 4) return out;
  const n = <usize>load<u32>(ptr);
  // Each pair needs at least 8 bytes of lengths and 2 NULs.
  if (n > (size - 4) / 10) return out;
  let lens = ptr + 4;
  let data = lens + n * 8;
  const end = ptr + size;
  for (let i: usize = 0; i < n; i++) {
    const kl = <usize>load<u32>(lens);
    const vl = <usize>load<u32>(lens + 4);
    lens += 8;
    if (kl > end - data || vl > end - data - kl || end - data - kl - vl < 2) break;
    const name = String.UTF8.decodeUnsafe(data, kl);
    data += kl + 1;
    const value = String.UTF8.decodeUnsafe(data, vl);
    data += vl + 1;
    out.push(new Header(name, value));
  }
  return out;
}

/** All pairs of map `type` (empty when the map is not available). */
export function getHeaderMapPairs(type: MapType): Array<Header> {
  clearReturn();
  if (proxy_get_header_map_pairs(type, RET_PTR, RET_SIZE) != Status.Ok) return new Array<Header>();
  const ptr = load<usize>(RET_PTR);
  const size = load<usize>(RET_SIZE);
  const out = deserializeHeaders(ptr, size);
  if (ptr != 0) heap.free(ptr);
  return out;
}

/** Replaces every pair of map `type`. */
export function setHeaderMapPairs(type: MapType, headers: Array<Header>): Status {
  const b = serializeHeaders(headers);
  return <Status>proxy_set_header_map_pairs(type, changetype<usize>(b), b.byteLength);
}

/** Serialized size of map `type`, or -1 when not available. */
export function getHeaderMapSize(type: MapType): i64 {
  if (proxy_get_header_map_size(type, RET_SIZE) != Status.Ok) return -1;
  return <i64>load<u32>(RET_SIZE);
}

/** The value of `name` in map `type`, or null when absent. */
export function getHeaderMapValue(type: MapType, name: string): string | null {
  const k = encode1(name);
  clearReturn();
  const s = proxy_get_header_map_value(type, k, len0, RET_PTR, RET_SIZE);
  if (s != Status.Ok) return null;
  return takeString();
}

/** Appends `name: value` to map `type` (keeps existing values). */
export function addHeaderMapValue(type: MapType, name: string, value: string): Status {
  const p = encode2(name, value);
  return <Status>proxy_add_header_map_value(type, p, len0, p + len0, len1);
}

/** Sets `name` to `value` in map `type`, replacing any existing values. */
export function replaceHeaderMapValue(type: MapType, name: string, value: string): Status {
  const p = encode2(name, value);
  return <Status>proxy_replace_header_map_value(type, p, len0, p + len0, len1);
}

/** Removes every value of `name` from map `type` (Ok when it was absent). */
export function removeHeaderMapValue(type: MapType, name: string): Status {
  const p = encode1(name);
  return <Status>proxy_remove_header_map_value(type, p, len0);
}

// ---- stream control ------------------------------------------------------------------------

/** Resumes a stream a callback paused. */
export function continueStream(type: StreamType): Status {
  return <Status>proxy_continue_stream(type);
}

/** Closes (resets) a stream. */
export function closeStream(type: StreamType): Status {
  return <Status>proxy_close_stream(type);
}

/**
 * Answers the request locally instead of (or in place of) the upstream response.
 * `grpcStatus` -1 means "not a gRPC reply".
 */
export function sendLocalResponse(statusCode: u32, details: string, body: ArrayBuffer | null, headers: Array<Header>, grpcStatus: i32): Status {
  const d = utf8(details);
  const h = serializeHeaders(headers);
  return <Status>proxy_send_local_response(
    statusCode, changetype<usize>(d), d.byteLength, ptrOf(body), lenOf(body),
    changetype<usize>(h), h.byteLength, grpcStatus);
}

// ---- HTTP callouts -------------------------------------------------------------------------

/** The result of starting a callout: the host's status and, when Ok, the call's token. */
export class CallResult {
  constructor(public status: Status, public token: u32) {}
}

/** Starts an HTTP call to the configured cluster `upstream`; the answer comes to `onHttpCallResponse`. */
export function httpCall(upstream: string, headers: Array<Header>, body: ArrayBuffer | null, trailers: Array<Header>, timeoutMs: u32): CallResult {
  const u = utf8(upstream);
  const h = serializeHeaders(headers);
  const t = serializeHeaders(trailers);
  store<u32>(RET_U32, 0);
  const s = <Status>proxy_http_call(
    changetype<usize>(u), u.byteLength, changetype<usize>(h), h.byteLength,
    ptrOf(body), lenOf(body), changetype<usize>(t), t.byteLength, timeoutMs, RET_U32);
  return new CallResult(s, load<u32>(RET_U32));
}

// ---- shared data ---------------------------------------------------------------------------

/** A shared-data value and the CAS token to update it with. */
export class SharedValue {
  constructor(public value: ArrayBuffer, public cas: u32) {}
}

/** The value under `key`, or null when absent. */
export function getSharedData(key: string): SharedValue | null {
  const k = encode1(key);
  clearReturn();
  store<u32>(RET_U32, 0);
  const s = proxy_get_shared_data(k, len0, RET_PTR, RET_SIZE, RET_U32);
  if (s != Status.Ok) return null;
  const cas = load<u32>(RET_U32);
  return new SharedValue(takeBytes(), cas);
}

/** Sets `key`; a non-zero `cas` must match the current token (else `Status.CasMismatch`). */
export function setSharedData(key: string, value: ArrayBuffer, cas: u32): Status {
  const k = encode1(key);
  return <Status>proxy_set_shared_data(k, len0, changetype<usize>(value), value.byteLength, cas);
}

// ---- shared queues -------------------------------------------------------------------------

/** Registers (or opens) the queue `name` owned by this VM; returns its id, or 0 on failure. */
export function registerSharedQueue(name: string): u32 {
  const n = utf8(name);
  store<u32>(RET_U32, 0);
  if (proxy_register_shared_queue(changetype<usize>(n), n.byteLength, RET_U32) != Status.Ok) return 0;
  return load<u32>(RET_U32);
}

/** The id of queue `name` of VM `vmId`, or 0 when there is none. */
export function resolveSharedQueue(vmId: string, name: string): u32 {
  const v = utf8(vmId);
  const n = utf8(name);
  store<u32>(RET_U32, 0);
  if (proxy_resolve_shared_queue(changetype<usize>(v), v.byteLength, changetype<usize>(n), n.byteLength, RET_U32) != Status.Ok) return 0;
  return load<u32>(RET_U32);
}

/** Appends `data` to queue `id`. */
export function enqueueSharedQueue(id: u32, data: ArrayBuffer): Status {
  return <Status>proxy_enqueue_shared_queue(id, changetype<usize>(data), data.byteLength);
}

/** Removes the oldest item of queue `id`; null when empty or unknown. */
export function dequeueSharedQueue(id: u32): ArrayBuffer | null {
  clearReturn();
  if (proxy_dequeue_shared_queue(id, RET_PTR, RET_SIZE) != Status.Ok) return null;
  return takeBytes();
}

// ---- metrics -------------------------------------------------------------------------------

/** Defines a metric; returns its id, or 0 on failure. */
export function defineMetric(type: MetricType, name: string): u32 {
  const n = utf8(name);
  store<u32>(RET_U32, 0);
  if (proxy_define_metric(type, changetype<usize>(n), n.byteLength, RET_U32) != Status.Ok) return 0;
  return load<u32>(RET_U32);
}

export function incrementMetric(id: u32, delta: i64): Status {
  return <Status>proxy_increment_metric(id, delta);
}

export function recordMetric(id: u32, value: u64): Status {
  return <Status>proxy_record_metric(id, value);
}

/** The current value of metric `id` (0 when unknown). */
export function getMetric(id: u32): u64 {
  store<u64>(RET_U64, 0);
  if (proxy_get_metric(id, RET_U64) != Status.Ok) return 0;
  return load<u64>(RET_U64);
}

// ---- properties ----------------------------------------------------------------------------

/**
 * Encodes a dotted path ("request.path") as the ABI wants: segments joined by NUL bytes.
 * A segment may contain a dot when it is escaped as "\.".
 */
export function encodePropertyPath(path: string): ArrayBuffer {
  if (path.indexOf("\\") < 0) return utf8(path.replaceAll(".", "\0"));
  let joined = "";
  let i = 0;
  const n = path.length;
  let seg = "";
  while (i < n) {
    const c = path.charCodeAt(i);
    if (c == 92 /* \ */ && i + 1 < n && path.charCodeAt(i + 1) == 46 /* . */) {
      seg += ".";
      i += 2;
      continue;
    }
    if (c == 46) {
      joined += seg + "\0";
      seg = "";
    } else {
      seg += String.fromCharCode(c);
    }
    i++;
  }
  joined += seg;
  return utf8(joined);
}

/** The raw bytes of property `path` (dotted, e.g. "request.path"), or null when absent. */
export function getProperty(path: string): ArrayBuffer | null {
  const p = encodePropertyPath(path);
  clearReturn();
  if (proxy_get_property(changetype<usize>(p), p.byteLength, RET_PTR, RET_SIZE) != Status.Ok) return null;
  return takeBytes();
}

/** Sets property `path` to `value`. */
export function setProperty(path: string, value: ArrayBuffer): Status {
  const p = encodePropertyPath(path);
  return <Status>proxy_set_property(changetype<usize>(p), p.byteLength, changetype<usize>(value), value.byteLength);
}

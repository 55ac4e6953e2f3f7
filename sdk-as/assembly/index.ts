// @omnirelay/sdk-as: write proxy-wasm (ABI v0.2.1) HTTP filters in AssemblyScript.
//
// A filter's entry file does two things:
//   export * from "@omnirelay/sdk-as/exports";   // the ABI entry points
//   registerRootContext((id: u32): RootContext => new MyRoot(id));
// See README.md for a walk-through.

export { Action, BufferType, Header, LogLevel, MapType, MetricType, PeerType, Status, StreamType } from "./types";
export { BaseContext, HttpContext, registerRootContext, RootContext, RootFactory } from "./context";
export { HeaderMap, lowerAscii, callResponseHeaders, callResponseTrailers, requestHeaders, requestTrailers, responseHeaders, responseTrailers } from "./headers";
export { Buffer, callResponseBody, pluginConfiguration, requestBody, responseBody, vmConfiguration } from "./buffers";
export { getProperty, getPropertyI64, getPropertyString, setProperty, setPropertyString } from "./properties";
export { Counter, Gauge, Histogram, Metric } from "./metrics";
export { SharedData, SharedValue } from "./shared-data";
export { SharedQueue } from "./shared-queue";
export { log, logCritical, logDebug, logError, logInfo, logTrace, logWarn } from "./logging";
export { JsonKind, JsonValue, jsonString, parseJson, parseJsonBytes } from "./json";
export { CallResult, currentTimeNanos, setTickPeriodMilliseconds } from "./hostcalls";

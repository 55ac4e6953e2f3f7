// Properties: facts about the stream, the connection and the plugin, by dotted path.
//
// Well-known paths (Envoy's attribute vocabulary): request.path, request.method,
// request.headers, request.id, request.time, source.address, source.port,
// destination.address, connection.mtls, upstream.address, plugin_name, plugin_root_id,
// and OmniRelay's own (omnirelay.route, omnirelay.epoch, omnirelay.peer_identity).
// Strings come back as raw bytes; integers as 8-byte little-endian values.

import { getProperty as hostGetProperty, setProperty as hostSetProperty } from "./hostcalls";
import { Status } from "./types";

/** The raw bytes of `path` (e.g. "request.path"), or null when absent. Escape a literal dot as "\\.". */
export function getProperty(path: string): ArrayBuffer | null {
  return hostGetProperty(path);
}

/**
 * `path` decoded as UTF-8, or null when absent.
 *
 * @example
 * const route = getPropertyString("omnirelay.route");
 */
export function getPropertyString(path: string): string | null {
  const b = hostGetProperty(path);
  return b === null ? null : String.UTF8.decode(b);
}

/** `path` read as a little-endian 64-bit integer (how hosts encode numbers), or `fallback`. */
export function getPropertyI64(path: string, fallback: i64 = 0): i64 {
  const b = hostGetProperty(path);
  if (b === null || b.byteLength < 8) return fallback;
  return load<i64>(changetype<usize>(b));
}

/** Sets property `path` (hosts accept only their writable paths, e.g. filter_state). */
export function setProperty(path: string, value: ArrayBuffer): Status {
  return hostSetProperty(path, value);
}

export function setPropertyString(path: string, value: string): Status {
  return hostSetProperty(path, String.UTF8.encode(value));
}

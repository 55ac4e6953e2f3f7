// Header and trailer maps of the current stream (and of a callout's response).

import {
  addHeaderMapValue, getHeaderMapPairs, getHeaderMapSize, getHeaderMapValue,
  removeHeaderMapValue, replaceHeaderMapValue, setHeaderMapPairs,
} from "./hostcalls";
import { Header, MapType, Status } from "./types";

/**
 * One header map of the host (`proxy_map_type_t`). The host only lets a callback touch the
 * maps of its phase (request headers in `onRequestHeaders`, ...); elsewhere calls return
 * `Status.NotFound` or null rather than trapping.
 *
 * @example
 * const ua = this.requestHeaders.get("user-agent");
 * this.requestHeaders.set("x-seen-by", "omnirelay");
 */
export class HeaderMap {
  constructor(public readonly type: MapType) {}

  /** The value of `name` (lower-case), or null when absent. Several values are joined by the host. */
  get(name: string): string | null {
    return getHeaderMapValue(this.type, name);
  }

  /** Whether `name` is present. */
  has(name: string): bool {
    return getHeaderMapValue(this.type, name) !== null;
  }

  /** Appends a value, keeping existing ones. */
  add(name: string, value: string): Status {
    return addHeaderMapValue(this.type, name, value);
  }

  /** Sets `name` to exactly `value`, replacing existing values. */
  set(name: string, value: string): Status {
    return replaceHeaderMapValue(this.type, name, value);
  }

  /** Removes every value of `name`. */
  remove(name: string): Status {
    return removeHeaderMapValue(this.type, name);
  }

  /** Every pair, in order (pseudo-headers such as `:path` first). */
  all(): Array<Header> {
    return getHeaderMapPairs(this.type);
  }

  /** Replaces the whole map. */
  replaceAll(headers: Array<Header>): Status {
    return setHeaderMapPairs(this.type, headers);
  }

  /** Serialized size in bytes, or -1 when the map is not available in this callback. */
  serializedSize(): i64 {
    return getHeaderMapSize(this.type);
  }
}

/**
 * `name` with ASCII letters lower-cased: HTTP field names are ASCII and stored lower-case.
 * Unlike `String#toLowerCase` it links no Unicode tables into the module (~8 KB).
 *
 * @example
 * const name = lowerAscii(cfg.getString("header", "X-Hello")); // "x-hello"
 */
export function lowerAscii(name: string): string {
  const n = name.length;
  let i = 0;
  while (i < n) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) break;
    i++;
  }
  if (i == n) return name;
  let out = name.substring(0, i);
  let start = i;
  for (; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) {
      out += name.substring(start, i) + String.fromCharCode(c + 0x20);
      start = i + 1;
    }
  }
  return out + name.substring(start);
}

export const requestHeaders = new HeaderMap(MapType.HttpRequestHeaders);
export const requestTrailers = new HeaderMap(MapType.HttpRequestTrailers);
export const responseHeaders = new HeaderMap(MapType.HttpResponseHeaders);
export const responseTrailers = new HeaderMap(MapType.HttpResponseTrailers);
/** Headers of an HTTP callout's response; valid inside `onHttpCallResponse`. */
export const callResponseHeaders = new HeaderMap(MapType.HttpCallResponseHeaders);
export const callResponseTrailers = new HeaderMap(MapType.HttpCallResponseTrailers);

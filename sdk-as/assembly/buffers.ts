// Byte buffers of the host: bodies, a callout's response body, plugin and VM configuration.

import { getBufferBytes, getBufferSize, setBufferBytes } from "./hostcalls";
import { BufferType, Status } from "./types";

/**
 * One host buffer (`proxy_buffer_type_t`). A body buffer is readable in its body callback
 * (it holds what this filter has buffered so far while it keeps returning `Action.Pause`).
 *
 * @example
 * onRequestBody(bodySize: u32, endOfStream: bool): Action {
 *   if (!endOfStream) return Action.Pause;            // buffer the whole body
 *   const text = this.requestBody.text(0, bodySize);
 *   this.requestBody.replace(String.UTF8.encode(text.toUpperCase()));
 *   return Action.Continue;
 * }
 */
export class Buffer {
  constructor(public readonly type: BufferType) {}

  /** Current size in bytes, or -1 when the buffer is not available in this callback. */
  size(): i64 {
    return getBufferSize(this.type);
  }

  /** Up to `maxSize` bytes from `start`; null when not available. */
  bytes(start: u32 = 0, maxSize: u32 = u32.MAX_VALUE): ArrayBuffer | null {
    if (maxSize == u32.MAX_VALUE) {
      // Ask for exactly what is there: some hosts refuse start + maxSize beyond the end.
      const size = getBufferSize(this.type);
      if (size < 0) return null;
      maxSize = <u64>size > <u64>start ? <u32>size - start : 0;
    }
    return getBufferBytes(this.type, start, maxSize);
  }

  /** The bytes decoded as UTF-8 ("" when not available). */
  text(start: u32 = 0, maxSize: u32 = u32.MAX_VALUE): string {
    const b = this.bytes(start, maxSize);
    return b === null ? "" : String.UTF8.decode(b);
  }

  /** Replaces the whole buffer with `data`. */
  replace(data: ArrayBuffer): Status {
    return setBufferBytes(this.type, 0, u32.MAX_VALUE, data);
  }

  /** Appends `data` at the end. */
  append(data: ArrayBuffer): Status {
    return setBufferBytes(this.type, u32.MAX_VALUE, 0, data);
  }

  /** Inserts `data` at the start. */
  prepend(data: ArrayBuffer): Status {
    return setBufferBytes(this.type, 0, 0, data);
  }
}

export const requestBody = new Buffer(BufferType.HttpRequestBody);
export const responseBody = new Buffer(BufferType.HttpResponseBody);
/** Body of an HTTP callout's response; valid inside `onHttpCallResponse`. */
export const callResponseBody = new Buffer(BufferType.HttpCallResponseBody);
/** The plugin configuration; valid inside `onConfigure`. */
export const pluginConfiguration = new Buffer(BufferType.PluginConfiguration);
/** The VM configuration; valid inside `onVmStart`. */
export const vmConfiguration = new Buffer(BufferType.VmConfiguration);

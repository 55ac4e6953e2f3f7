// Process-wide key/value store shared by every instance of every filter, with compare-and-swap.

import { getSharedData, setSharedData, SharedValue } from "./hostcalls";
import { Status } from "./types";

export { SharedValue };

/**
 * Shared data. Read a value with its CAS token, compute, and write back with that token:
 * a `Status.CasMismatch` answer means someone else wrote first, so read again and retry
 * (bounded: see the rate-limit example).
 *
 * @example
 * const cur = SharedData.get("hits");
 * const n: u64 = cur === null ? 0 : load<u64>(changetype<usize>(cur.value));
 * const buf = new ArrayBuffer(8);
 * store<u64>(changetype<usize>(buf), n + 1);
 * SharedData.set("hits", buf, cur === null ? 0 : cur.cas);
 */
export class SharedData {
  /** The value and its CAS token, or null when absent. */
  static get(key: string): SharedValue | null {
    return getSharedData(key);
  }

  /** Sets `key`; with a non-zero `cas` only if nobody wrote since that token was read. */
  static set(key: string, value: ArrayBuffer, cas: u32 = 0): Status {
    return setSharedData(key, value, cas);
  }

  static getString(key: string): string | null {
    const v = getSharedData(key);
    return v === null ? null : String.UTF8.decode(v.value);
  }

  static setString(key: string, value: string, cas: u32 = 0): Status {
    return setSharedData(key, String.UTF8.encode(value), cas);
  }
}

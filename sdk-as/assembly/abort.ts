// Runtime hooks the build wires in with `--use abort=... --use trace=... --use seed=...`,
// so a compiled filter imports nothing but `env.proxy_*` (no `env.abort`, no WASI).

import { currentTimeNanos, log } from "./hostcalls";
import { LogLevel } from "./types";

let aborting = false;

/** Replaces AssemblyScript's `abort`: logs where and why at CRITICAL, then traps. */
export function proxyAbort(message: string | null = null, fileName: string | null = null, lineNumber: u32 = 0, columnNumber: u32 = 0): void {
  // A failure while reporting a failure (e.g. out of memory) must not recurse.
  if (!aborting) {
    aborting = true;
    let m = "abort: " + (message === null ? "" : message);
    if (fileName !== null) m += " at " + fileName + ":" + lineNumber.toString() + ":" + columnNumber.toString();
    log(LogLevel.Critical, m);
  }
  unreachable();
}

/** Replaces AssemblyScript's `trace`: logs at DEBUG. */
export function proxyTrace(message: string, n: i32 = 0, a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0, a4: f64 = 0): void {
  let m = "trace: " + message;
  if (n > 0) m += " " + a0.toString();
  if (n > 1) m += " " + a1.toString();
  if (n > 2) m += " " + a2.toString();
  if (n > 3) m += " " + a3.toString();
  if (n > 4) m += " " + a4.toString();
  log(LogLevel.Debug, m);
}

/** Seeds `Math.random` from the host clock (only linked when a filter uses `Math.random`). */
export function proxySeed(): f64 {
  return <f64>currentTimeNanos();
}

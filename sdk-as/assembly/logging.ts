// Logging through the host (`proxy_log`): lines go to the proxy's log, tagged with the filter.

import { log } from "./hostcalls";
import { LogLevel } from "./types";

export { log };

/** @example logInfo("configured " + n.toString() + " rules"); */
export function logTrace(message: string): void { log(LogLevel.Trace, message); }
export function logDebug(message: string): void { log(LogLevel.Debug, message); }
export function logInfo(message: string): void { log(LogLevel.Info, message); }
export function logWarn(message: string): void { log(LogLevel.Warn, message); }
export function logError(message: string): void { log(LogLevel.Error, message); }
export function logCritical(message: string): void { log(LogLevel.Critical, message); }

// path-deny: refuses requests whose path falls under a configured prefix, with a JSON error.
//
// { "prefixes": ["/admin", "/internal/"], "status": 403, "message": "forbidden" }
//
// A prefix matches whole path segments: "/admin" denies "/admin" and "/admin/users" but
// not "/administrator". Paths are normalized first ("//admin", "/./admin", "/x/../admin",
// "/%61dmin" all count as "/admin") so the rule cannot be dodged by spelling.

export * from "@omnirelay/sdk-as/exports";
import { Action, Counter, Header, HttpContext, jsonString, logError, registerRootContext, RootContext } from "@omnirelay/sdk-as";

class PathDenyRoot extends RootContext {
  prefixes: Array<string> = [];
  status: u32 = 403;
  message: string = "forbidden";
  denied: Counter | null = null;

  onConfigure(configSize: u32): bool {
    const cfg = this.configJson();
    if (cfg === null || !cfg.isObject()) return reject("configuration must be a JSON object");
    const prefixes = cfg.getStringArray("prefixes");
    for (let i = 0; i < prefixes.length; i++) {
      const p = normalizePath(prefixes[i]);
      // "/admin/" and "/admin" mean the same subtree.
      this.prefixes.push(p.length > 1 && p.endsWith("/") ? p.substring(0, p.length - 1) : p);
    }
    const status = cfg.getInt("status", 403);
    if (status < 200 || status > 599) return reject("status must be between 200 and 599");
    this.status = <u32>status;
    this.message = cfg.getString("message", this.message);
    this.denied = Counter.define("path_deny_denied_total");
    return true;
  }

  newHttpContext(contextId: u32): HttpContext {
    return new PathDeny(contextId, this);
  }
}

class PathDeny extends HttpContext {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const root = this.root as PathDenyRoot;
    const raw = this.requestHeaders.get(":path");
    if (raw === null) return Action.Continue;
    const path = normalizePath(raw);
    for (let i = 0; i < root.prefixes.length; i++) {
      if (!underPrefix(path, root.prefixes[i])) continue;
      if (root.denied !== null) root.denied!.increment();
      const body = '{"error":"path_denied","message":' + jsonString(root.message) + ',"path":' + jsonString(path) + "}";
      this.sendLocalResponse(root.status, body, [new Header("content-type", "application/json")], "path_denied");
      return Action.Pause;
    }
    return Action.Continue;
  }
}

/** Whether `path` is `prefix` or below it, on a segment boundary. */
function underPrefix(path: string, prefix: string): bool {
  if (prefix == "/") return true;
  if (!path.startsWith(prefix)) return false;
  return path.length == prefix.length || path.charCodeAt(prefix.length) == 0x2f;
}

/**
 * The path part (no query), with unreserved %XX escapes decoded, repeated slashes collapsed
 * and "." / ".." segments resolved (RFC 3986 5.2.4). "%2F" stays encoded: it is not a separator.
 */
function normalizePath(raw: string): string {
  let end = raw.indexOf("?");
  if (end < 0) end = raw.length;
  const hash = raw.indexOf("#");
  if (hash >= 0 && hash < end) end = hash;
  if (isCanonical(raw, end)) return end == raw.length ? raw : raw.substring(0, end);
  const decoded = decodeUnreserved(raw.substring(0, end));
  const segments = decoded.split("/");
  const out = new Array<string>();
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (s.length == 0 || s == ".") continue;
    if (s == "..") {
      if (out.length > 0) out.pop();
      continue;
    }
    out.push(s);
  }
  let result = "/" + out.join("/");
  const last = segments.length > 0 ? segments[segments.length - 1] : "";
  if (out.length > 0 && (last.length == 0 || last == "." || last == "..")) result += "/";
  return result;
}

/** Whether raw[0..end) is already normal: starts with "/", no "%", no "//", no "." segment. The common case: no allocation. */
function isCanonical(raw: string, end: i32): bool {
  if (end == 0 || raw.charCodeAt(0) != 0x2f) return false;
  for (let i = 1; i < end; i++) {
    const c = raw.charCodeAt(i);
    if (c == 0x25) return false;
    if (raw.charCodeAt(i - 1) == 0x2f && (c == 0x2f || c == 0x2e)) return false;
  }
  return true;
}

function decodeUnreserved(s: string): string {
  if (s.indexOf("%") < 0) return s;
  let out = "";
  let start = 0;
  for (let i = 0; i + 2 < s.length; i++) {
    if (s.charCodeAt(i) != 0x25) continue;
    const h = hex(s.charCodeAt(i + 1));
    const l = hex(s.charCodeAt(i + 2));
    if (h < 0 || l < 0) continue;
    const c = (h << 4) | l;
    const unreserved = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
      c == 0x2d || c == 0x2e || c == 0x5f || c == 0x7e;
    if (!unreserved) continue;
    out += s.substring(start, i) + String.fromCharCode(c);
    start = i + 3;
    i += 2;
  }
  return out + s.substring(start);
}

function hex(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** Logs why the configuration is refused (the host then refuses to load the filter). */
function reject(reason: string): bool {
  logError("path-deny: " + reason);
  return false;
}

registerRootContext((id: u32): RootContext => new PathDenyRoot(id));

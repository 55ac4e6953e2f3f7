// callout-auth: asks an auth service (a configured cluster) about every request. The request
// waits (paused) for the answer: 200 lets it through, 403 gives 403, anything else 401;
// no answer (timeout, reset, unknown cluster) gives 503.
//
// {
//   "cluster": "auth", "path": "/check", "timeoutMs": 2000,
//   "forwardHeaders": ["authorization", "cookie"],   // copied to the auth request
//   "copyHeaders": ["x-user-id"]                     // copied from a 200 answer to the request
// }
//
// The auth service also gets x-original-method and x-original-path.

export * from "@omnirelay/sdk-as/exports";
import { Action, Header, HttpContext, jsonString, logError, logWarn, lowerAscii, registerRootContext, RootContext, Status } from "@omnirelay/sdk-as";

class AuthRoot extends RootContext {
  cluster: string = "";
  path: string = "/";
  timeoutMs: u32 = 2000;
  forwardHeaders: Array<string> = ["authorization"];
  copyHeaders: Array<string> = [];

  onConfigure(configSize: u32): bool {
    const cfg = this.configJson();
    if (cfg === null || !cfg.isObject()) return reject("configuration must be a JSON object");
    this.cluster = cfg.getString("cluster", "");
    if (this.cluster.length == 0) return reject("cluster is required");
    this.path = cfg.getString("path", this.path);
    const timeout = cfg.getInt("timeoutMs", 2000);
    if (timeout < 1 || timeout > 60000) return reject("timeoutMs must be between 1 and 60000");
    this.timeoutMs = <u32>timeout;
    if (cfg.has("forwardHeaders")) this.forwardHeaders = lower(cfg.getStringArray("forwardHeaders"));
    this.copyHeaders = lower(cfg.getStringArray("copyHeaders"));
    return true;
  }

  newHttpContext(contextId: u32): HttpContext {
    return new Auth(contextId, this);
  }
}

class Auth extends HttpContext {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const root = this.root as AuthRoot;
    const headers: Array<Header> = [
      new Header(":method", "GET"),
      new Header(":path", root.path),
      new Header(":authority", root.cluster),
    ];
    const method = this.requestHeaders.get(":method");
    const path = this.requestHeaders.get(":path");
    if (method !== null) headers.push(new Header("x-original-method", method));
    if (path !== null) headers.push(new Header("x-original-path", path));
    for (let i = 0; i < root.forwardHeaders.length; i++) {
      const v = this.requestHeaders.get(root.forwardHeaders[i]);
      if (v !== null) headers.push(new Header(root.forwardHeaders[i], v));
    }
    const call = this.httpCall(root.cluster, headers, null, root.timeoutMs);
    if (call.status != Status.Ok) {
      logWarn("callout-auth: cannot call cluster " + root.cluster + " (status " + (<i32>call.status).toString() + ")");
      this.reply(503, "auth_unavailable");
      return Action.Pause;
    }
    return Action.Pause;
  }

  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
    if (numHeaders == 0) {
      this.reply(503, "auth_unavailable");
      return;
    }
    const status = this.callResponseHeaders.get(":status");
    if (status == "200") {
      const root = this.root as AuthRoot;
      for (let i = 0; i < root.copyHeaders.length; i++) {
        const v = this.callResponseHeaders.get(root.copyHeaders[i]);
        if (v !== null) this.requestHeaders.set(root.copyHeaders[i], v);
      }
      this.resumeRequest();
      return;
    }
    if (status == "403") {
      this.reply(403, "forbidden");
      return;
    }
    const challenge = this.callResponseHeaders.get("www-authenticate");
    this.reply(401, "unauthorized", challenge);
  }

  reply(status: u32, error: string, challenge: string | null = null): void {
    const headers: Array<Header> = [new Header("content-type", "application/json")];
    if (challenge !== null) headers.push(new Header("www-authenticate", challenge));
    this.sendLocalResponse(status, '{"error":' + jsonString(error) + "}", headers, "auth_" + error);
  }
}

function lower(names: Array<string>): Array<string> {
  for (let i = 0; i < names.length; i++) names[i] = lowerAscii(names[i]);
  return names;
}

/** Logs why the configuration is refused (the host then refuses to load the filter). */
function reject(reason: string): bool {
  logError("callout-auth: " + reason);
  return false;
}

registerRootContext((id: u32): RootContext => new AuthRoot(id));

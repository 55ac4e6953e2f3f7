// The conformance policy in AssemblyScript (built with @omnirelay/sdk-as); the same policy as
// ../../policy.js. Change all three together.

export * from "@omnirelay/sdk-as/exports";
import { Action, Counter, Header, HttpContext, jsonString, registerRootContext, RootContext } from "@omnirelay/sdk-as";

class PolicyRoot extends RootContext {
  requests: Counter | null = null;
  denied: Counter | null = null;

  onConfigure(configSize: u32): bool {
    this.requests = Counter.define("policy_requests");
    this.denied = Counter.define("policy_denied");
    return true;
  }

  newHttpContext(contextId: u32): HttpContext {
    return new Policy(contextId, this);
  }
}

class Policy extends HttpContext {
  deny(status: u32, body: string): Action {
    const root = this.root as PolicyRoot;
    root.denied!.increment();
    this.sendLocalResponse(status, body, [new Header("content-type", "application/json")], "policy");
    return Action.Pause;
  }

  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const root = this.root as PolicyRoot;
    const h = this.requestHeaders;
    const p = h.get(":path");
    const path = p === null ? "" : p;
    root.requests!.increment();
    const method = h.get(":method");
    if (method !== null && method == "TRACE") return this.deny(405, '{"error":"method_not_allowed","method":"TRACE"}');
    if (path.startsWith("/admin")) return this.deny(403, '{"error":"forbidden","path":' + jsonString(path) + "}");
    if (h.has("x-block")) return this.deny(403, '{"error":"blocked"}');
    h.remove("x-internal-secret");
    h.remove("proxy-authorization");
    h.add("x-policy", "v1");
    const authority = h.get(":authority");
    if (authority !== null) h.set("x-forwarded-host", authority);
    if (path.startsWith("/api/")) h.set("x-api", "1");
    const old = h.get("x-old");
    if (old !== null) {
      h.set("x-new", old);
      h.remove("x-old");
    }
    const ua = h.get("user-agent");
    if (ua !== null && ua.includes("bot")) h.set("x-bot", "1");
    h.set("x-path-length", path.length.toString());
    const tenant = h.get("x-tenant");
    if (tenant !== null) h.set("x-tenant-checked", "tenant-" + tenant);
    return Action.Continue;
  }

  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action {
    const h = this.responseHeaders;
    h.remove("server");
    h.set("x-served-by", "omnirelay");
    return Action.Continue;
  }
}

registerRootContext((id: u32): RootContext => new PolicyRoot(id));

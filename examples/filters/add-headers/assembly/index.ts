// add-headers: adds, sets and removes request and response headers, from JSON config.
//
// {
//   "request":  { "add": { "x-added": "1" }, "set": { "x-env": "prod" }, "remove": ["x-internal"] },
//   "response": { "add": { "x-served-by": "omnirelay" }, "remove": ["server"] }
// }

export * from "@omnirelay/sdk-as/exports";
import { Action, Header, HeaderMap, HttpContext, JsonValue, logError, lowerAscii, registerRootContext, RootContext } from "@omnirelay/sdk-as";

/** The edits for one direction, parsed once from config. */
class Edits {
  add: Array<Header> = [];
  set: Array<Header> = [];
  remove: Array<string> = [];

  static from(cfg: JsonValue | null): Edits {
    const e = new Edits();
    if (cfg === null) return e;
    e.add = pairs(cfg.getObject("add"));
    e.set = pairs(cfg.getObject("set"));
    e.remove = cfg.getStringArray("remove");
    for (let i = 0; i < e.remove.length; i++) e.remove[i] = lowerAscii(e.remove[i]);
    return e;
  }

  get empty(): bool {
    return this.add.length == 0 && this.set.length == 0 && this.remove.length == 0;
  }

  apply(map: HeaderMap): void {
    for (let i = 0; i < this.remove.length; i++) map.remove(this.remove[i]);
    for (let i = 0; i < this.set.length; i++) map.set(this.set[i].name, this.set[i].value);
    for (let i = 0; i < this.add.length; i++) map.add(this.add[i].name, this.add[i].value);
  }
}

function pairs(obj: JsonValue | null): Array<Header> {
  const out = new Array<Header>();
  if (obj === null) return out;
  for (let i = 0; i < obj.length; i++) {
    const v = obj.at(i)!;
    if (v.isString()) out.push(new Header(lowerAscii(obj.keyAt(i)!), v.stringValue));
  }
  return out;
}

class AddHeadersRoot extends RootContext {
  request: Edits = new Edits();
  response: Edits = new Edits();

  onConfigure(configSize: u32): bool {
    const cfg = this.configJson();
    if (cfg === null || !cfg.isObject()) return reject("configuration must be a JSON object");
    this.request = Edits.from(cfg.getObject("request"));
    this.response = Edits.from(cfg.getObject("response"));
    return true;
  }

  newHttpContext(contextId: u32): HttpContext {
    return new AddHeaders(contextId, this);
  }
}

class AddHeaders extends HttpContext {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const edits = (this.root as AddHeadersRoot).request;
    if (!edits.empty) edits.apply(this.requestHeaders);
    return Action.Continue;
  }

  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action {
    const edits = (this.root as AddHeadersRoot).response;
    if (!edits.empty) edits.apply(this.responseHeaders);
    return Action.Continue;
  }
}

/** Logs why the configuration is refused (the host then refuses to load the filter). */
function reject(reason: string): bool {
  logError("add-headers: " + reason);
  return false;
}

registerRootContext((id: u32): RootContext => new AddHeadersRoot(id));

// rate-limit: a token bucket kept in shared data (so every instance and every worker of the
// plugin draws from the same bucket), updated with compare-and-swap; 429 when empty.
//
// { "capacity": 10, "refillPerSecond": 5, "bucket": "api", "keyHeader": "x-api-key" }
//
// Without "keyHeader" there is one bucket; with it, one bucket per header value.

export * from "@omnirelay/sdk-as/exports";
import {
  Action, Counter, currentTimeNanos, Header, HttpContext, logError, logWarn, lowerAscii, registerRootContext, RootContext, SharedData, Status,
} from "@omnirelay/sdk-as";

/** Concurrent writers are rare; give up (and let the request through) after this many races. */
const MAX_CAS_ATTEMPTS = 8;
/** Bucket state in shared data: f64 tokens, u64 last refill time (ns). */
const STATE_SIZE = 16;

class RateLimitRoot extends RootContext {
  capacity: f64 = 10;
  refillPerSecond: f64 = 5;
  bucket: string = "default";
  keyHeader: string = "";
  /** The shared-data key of the bucket (per header value, this plus ":" and the value). */
  key: string = "rate-limit:default";
  limited: Counter | null = null;
  /** Scratch for the state we write; one instance runs one callback at a time. */
  state: ArrayBuffer = new ArrayBuffer(STATE_SIZE);

  onConfigure(configSize: u32): bool {
    const cfg = this.configJson();
    if (cfg === null || !cfg.isObject()) return reject("configuration must be a JSON object");
    this.capacity = cfg.getNumber("capacity", this.capacity);
    this.refillPerSecond = cfg.getNumber("refillPerSecond", this.refillPerSecond);
    if (!(this.capacity >= 1) || !isFinite(this.capacity)) return reject("capacity must be a number >= 1");
    if (!(this.refillPerSecond > 0) || !isFinite(this.refillPerSecond)) return reject("refillPerSecond must be a number > 0");
    this.bucket = cfg.getString("bucket", this.bucket);
    this.keyHeader = lowerAscii(cfg.getString("keyHeader", ""));
    this.key = "rate-limit:" + this.bucket;
    this.limited = Counter.define("rate_limit_limited_total");
    return true;
  }

  newHttpContext(contextId: u32): HttpContext {
    return new RateLimit(contextId, this);
  }

  /** Takes one token from bucket `key`; returns the seconds to wait when there is none (0 = allowed). */
  take(key: string): f64 {
    const now = currentTimeNanos();
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      let tokens = this.capacity;
      let last = now;
      let cas: u32 = 0;
      const cur = SharedData.get(key);
      if (cur !== null && cur.value.byteLength == STATE_SIZE) {
        const p = changetype<usize>(cur.value);
        tokens = load<f64>(p);
        last = load<u64>(p, 8);
        cas = cur.cas;
      }
      if (now > last) tokens = Math.min(this.capacity, tokens + <f64>(now - last) / 1e9 * this.refillPerSecond);
      if (tokens < 1) return (1 - tokens) / this.refillPerSecond;
      const p = changetype<usize>(this.state);
      store<f64>(p, tokens - 1);
      store<u64>(p, now > last ? now : last, 8);
      const s = SharedData.set(key, this.state, cas);
      if (s == Status.Ok) return 0;
      if (s != Status.CasMismatch) break;
    }
    logWarn("rate-limit: could not update bucket " + key + "; letting the request through");
    return 0;
  }
}

class RateLimit extends HttpContext {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const root = this.root as RateLimitRoot;
    let key = root.key;
    if (root.keyHeader.length > 0) {
      const v = this.requestHeaders.get(root.keyHeader);
      key += ":" + (v === null ? "" : v);
    }
    const wait = root.take(key);
    if (wait == 0) return Action.Continue;
    if (root.limited !== null) root.limited!.increment();
    const retryAfter = <i32>Math.ceil(wait);
    this.sendLocalResponse(
      429,
      '{"error":"rate_limited","retryAfterSeconds":' + retryAfter.toString() + "}",
      [new Header("content-type", "application/json"), new Header("retry-after", retryAfter.toString())],
      "rate_limited",
    );
    return Action.Pause;
  }
}

/** Logs why the configuration is refused (the host then refuses to load the filter). */
function reject(reason: string): bool {
  logError("rate-limit: " + reason);
  return false;
}

registerRootContext((id: u32): RootContext => new RateLimitRoot(id));

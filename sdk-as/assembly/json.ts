// A small, safe JSON reader for filter configuration (AssemblyScript has no JSON built in),
// and a string escaper for writing JSON bodies. Bad input gives null, never a trap; nesting
// is capped so hostile config cannot exhaust the stack.

export enum JsonKind {
  Null = 0,
  Bool = 1,
  Number = 2,
  String = 3,
  Array = 4,
  Object = 5,
}

const MAX_DEPTH = 64;

/**
 * One parsed JSON value. Typed accessors take a fallback so reading config stays one line
 * per field.
 *
 * @example
 * const cfg = parseJson('{"status":403,"prefixes":["/admin"]}');
 * if (cfg !== null) {
 *   const status = cfg.getInt("status", 403);
 *   const prefixes = cfg.getStringArray("prefixes");
 * }
 */
export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  boolValue: bool = false;
  numberValue: f64 = 0;
  stringValue: string = "";
  /** Array items, or object values (parallel to `keys`). */
  items: Array<JsonValue> | null = null;
  keys: Array<string> | null = null;

  isNull(): bool { return this.kind == JsonKind.Null; }
  isBool(): bool { return this.kind == JsonKind.Bool; }
  isNumber(): bool { return this.kind == JsonKind.Number; }
  isString(): bool { return this.kind == JsonKind.String; }
  isArray(): bool { return this.kind == JsonKind.Array; }
  isObject(): bool { return this.kind == JsonKind.Object; }

  /** Items of an array, values of an object; 0 otherwise. */
  get length(): i32 {
    const items = this.items;
    return items === null ? 0 : items.length;
  }

  /** Item `i` of an array (or value `i` of an object), or null. */
  at(i: i32): JsonValue | null {
    const items = this.items;
    if (items === null || i < 0 || i >= items.length) return null;
    return items[i];
  }

  /** Key `i` of an object, or null. */
  keyAt(i: i32): string | null {
    const keys = this.keys;
    if (keys === null || i < 0 || i >= keys.length) return null;
    return keys[i];
  }

  /** The member `key` of an object (the last one when repeated), or null. */
  get(key: string): JsonValue | null {
    const keys = this.keys;
    const items = this.items;
    if (keys === null || items === null) return null;
    for (let i = keys.length - 1; i >= 0; i--) {
      if (keys[i] == key) return items[i];
    }
    return null;
  }

  has(key: string): bool { return this.get(key) !== null; }

  getString(key: string, fallback: string = ""): string {
    const v = this.get(key);
    return v !== null && v.kind == JsonKind.String ? v.stringValue : fallback;
  }

  getNumber(key: string, fallback: f64 = 0): f64 {
    const v = this.get(key);
    return v !== null && v.kind == JsonKind.Number ? v.numberValue : fallback;
  }

  /** A number member truncated to an integer; `fallback` when absent, not a number or not finite. */
  getInt(key: string, fallback: i64 = 0): i64 {
    const v = this.get(key);
    if (v === null || v.kind != JsonKind.Number || !isFinite(v.numberValue)) return fallback;
    if (v.numberValue >= 9.2e18 || v.numberValue <= -9.2e18) return fallback;
    return <i64>v.numberValue;
  }

  getBool(key: string, fallback: bool = false): bool {
    const v = this.get(key);
    return v !== null && v.kind == JsonKind.Bool ? v.boolValue : fallback;
  }

  /** An object member, or null when absent or not an object. */
  getObject(key: string): JsonValue | null {
    const v = this.get(key);
    return v !== null && v.kind == JsonKind.Object ? v : null;
  }

  /** An array member's items (empty when absent or not an array). */
  getArray(key: string): Array<JsonValue> {
    const v = this.get(key);
    if (v === null || v.kind != JsonKind.Array) return new Array<JsonValue>();
    const items = v.items;
    return items === null ? new Array<JsonValue>() : items;
  }

  /** The string items of an array member; non-strings are skipped. */
  getStringArray(key: string): Array<string> {
    const items = this.getArray(key);
    const out = new Array<string>();
    for (let i = 0; i < items.length; i++) {
      if (items[i].kind == JsonKind.String) out.push(items[i].stringValue);
    }
    return out;
  }
}

/** Parses `text`; null when it is not exactly one valid JSON value (or nests deeper than 64). */
export function parseJson(text: string): JsonValue | null {
  const p = new Parser(text);
  p.skipWs();
  const v = p.value(0);
  if (v === null) return null;
  p.skipWs();
  return p.pos == text.length ? v : null;
}

/** Parses UTF-8 bytes (e.g. the plugin configuration); null when invalid. */
export function parseJsonBytes(bytes: ArrayBuffer): JsonValue | null {
  return parseJson(String.UTF8.decode(bytes));
}

/**
 * `s` as a quoted JSON string literal.
 *
 * @example
 * const body = '{"error":"denied","path":' + jsonString(path) + "}";
 */
export function jsonString(s: string): string {
  let out = "\"";
  let start = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
    out += s.substring(start, i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else {
      out += "\\u00";
      out += HEX.charAt(c >> 4);
      out += HEX.charAt(c & 0xf);
    }
    start = i + 1;
  }
  out += s.substring(start);
  return out + "\"";
}

const HEX = "0123456789abcdef";

class Parser {
  pos: i32 = 0;
  constructor(public text: string) {}

  skipWs(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09) this.pos++;
      else break;
    }
  }

  value(depth: i32): JsonValue | null {
    if (depth > MAX_DEPTH) return null;
    const t = this.text;
    if (this.pos >= t.length) return null;
    const c = t.charCodeAt(this.pos);
    if (c == 0x7b) return this.object(depth);
    if (c == 0x5b) return this.array(depth);
    if (c == 0x22) {
      const s = this.string();
      if (s === null) return null;
      const v = new JsonValue();
      v.kind = JsonKind.String;
      v.stringValue = s;
      return v;
    }
    if (c == 0x74) return this.literal("true", JsonKind.Bool, true);
    if (c == 0x66) return this.literal("false", JsonKind.Bool, false);
    if (c == 0x6e) return this.literal("null", JsonKind.Null, false);
    return this.number();
  }

  literal(word: string, kind: JsonKind, b: bool): JsonValue | null {
    if (this.text.substring(this.pos, this.pos + word.length) != word) return null;
    this.pos += word.length;
    const v = new JsonValue();
    v.kind = kind;
    v.boolValue = b;
    return v;
  }

  // Not parseFloat: AssemblyScript's strtod mis-scales 16+ digit mantissas with large
  // exponents (found by the fuzz test). Up to 19 significant digits are kept; scaling is exact
  // (correctly rounded) for the common case |exponent| <= 22 with a mantissa below 2^53.
  number(): JsonValue | null {
    const t = this.text;
    const n = t.length;
    let negative = false;
    if (this.pos < n && t.charCodeAt(this.pos) == 0x2d) {
      negative = true;
      this.pos++;
    }
    let mantissa: u64 = 0;
    let digits = 0;
    let exp10: i32 = 0;
    const intStart = this.pos;
    while (this.pos < n && isDigit(t.charCodeAt(this.pos))) {
      const d = <u64>(t.charCodeAt(this.pos) - 0x30);
      if (digits < 19) {
        mantissa = mantissa * 10 + d;
        if (mantissa != 0) digits++;
      } else exp10++;
      this.pos++;
    }
    const intLen = this.pos - intStart;
    if (intLen == 0) return null;
    if (intLen > 1 && t.charCodeAt(intStart) == 0x30) return null;
    if (this.pos < n && t.charCodeAt(this.pos) == 0x2e) {
      this.pos++;
      const f = this.pos;
      while (this.pos < n && isDigit(t.charCodeAt(this.pos))) {
        if (digits < 19) {
          mantissa = mantissa * 10 + <u64>(t.charCodeAt(this.pos) - 0x30);
          if (mantissa != 0) digits++;
          exp10--;
        }
        this.pos++;
      }
      if (this.pos == f) return null;
    }
    if (this.pos < n && (t.charCodeAt(this.pos) | 0x20) == 0x65) {
      this.pos++;
      let expNegative = false;
      if (this.pos < n && (t.charCodeAt(this.pos) == 0x2b || t.charCodeAt(this.pos) == 0x2d)) {
        expNegative = t.charCodeAt(this.pos) == 0x2d;
        this.pos++;
      }
      const e = this.pos;
      let exp: i32 = 0;
      while (this.pos < n && isDigit(t.charCodeAt(this.pos))) {
        if (exp < 100000) exp = exp * 10 + (t.charCodeAt(this.pos) - 0x30);
        this.pos++;
      }
      if (this.pos == e) return null;
      exp10 += expNegative ? -exp : exp;
    }
    const v = new JsonValue();
    v.kind = JsonKind.Number;
    const magnitude = scale(mantissa, exp10);
    v.numberValue = negative ? -magnitude : magnitude;
    return v;
  }

  string(): string | null {
    const t = this.text;
    this.pos++; // opening quote
    let out = "";
    let start = this.pos;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c == 0x22) {
        out += t.substring(start, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) return null;
      if (c != 0x5c) {
        this.pos++;
        continue;
      }
      out += t.substring(start, this.pos);
      if (this.pos + 1 >= t.length) return null;
      const e = t.charCodeAt(this.pos + 1);
      this.pos += 2;
      if (e == 0x22) out += "\"";
      else if (e == 0x5c) out += "\\";
      else if (e == 0x2f) out += "/";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x6e) out += "\n";
      else if (e == 0x72) out += "\r";
      else if (e == 0x74) out += "\t";
      else if (e == 0x75) {
        if (this.pos + 4 > t.length) return null;
        let code: i32 = 0;
        for (let k = 0; k < 4; k++) {
          const h = hexValue(t.charCodeAt(this.pos + k));
          if (h < 0) return null;
          code = (code << 4) | h;
        }
        this.pos += 4;
        out += String.fromCharCode(code);
      } else return null;
      start = this.pos;
    }
    return null;
  }

  array(depth: i32): JsonValue | null {
    this.pos++;
    const items = new Array<JsonValue>();
    const v = new JsonValue();
    v.kind = JsonKind.Array;
    v.items = items;
    this.skipWs();
    if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x5d) {
      this.pos++;
      return v;
    }
    while (true) {
      this.skipWs();
      const item = this.value(depth + 1);
      if (item === null) return null;
      items.push(item);
      this.skipWs();
      if (this.pos >= this.text.length) return null;
      const c = this.text.charCodeAt(this.pos++);
      if (c == 0x5d) return v;
      if (c != 0x2c) return null;
    }
  }

  object(depth: i32): JsonValue | null {
    this.pos++;
    const keys = new Array<string>();
    const items = new Array<JsonValue>();
    const v = new JsonValue();
    v.kind = JsonKind.Object;
    v.keys = keys;
    v.items = items;
    this.skipWs();
    if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x7d) {
      this.pos++;
      return v;
    }
    while (true) {
      this.skipWs();
      if (this.pos >= this.text.length || this.text.charCodeAt(this.pos) != 0x22) return null;
      const key = this.string();
      if (key === null) return null;
      this.skipWs();
      if (this.pos >= this.text.length || this.text.charCodeAt(this.pos) != 0x3a) return null;
      this.pos++;
      this.skipWs();
      const item = this.value(depth + 1);
      if (item === null) return null;
      keys.push(key);
      items.push(item);
      this.skipWs();
      if (this.pos >= this.text.length) return null;
      const c = this.text.charCodeAt(this.pos++);
      if (c == 0x7d) return v;
      if (c != 0x2c) return null;
    }
  }
}

// Exact powers of ten representable as f64.
const POW10: StaticArray<f64> = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

function scale(mantissa: u64, exp10: i32): f64 {
  if (mantissa == 0) return 0;
  const m = <f64>mantissa;
  if (mantissa <= (<u64>1 << 53) && exp10 >= -22 && exp10 <= 22) {
    return exp10 >= 0 ? m * unchecked(POW10[exp10]) : m / unchecked(POW10[-exp10]);
  }
  if (exp10 > 330) return Infinity;
  if (exp10 < -360) return 0;
  // Rare (huge or tiny numbers, long mantissas): scale in steps of at most 10^22. Not always
  // correctly rounded (a few ulp at worst), and no Math.pow linked into every filter.
  let v = m;
  let e = exp10;
  while (e > 22) { v *= 1e22; e -= 22; }
  while (e < -22) { v /= 1e22; e += 22; }
  return e >= 0 ? v * unchecked(POW10[e]) : v / unchecked(POW10[-e]);
}

@inline function isDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/**
 * The trusted JavaScript that runs inside every QuickJS context, once, before any request:
 * it builds the views filters see (`req`, `res`, `ctx`) over the host calls the grant allows,
 * and returns the dispatcher the host calls per hook.
 *
 * Why a prelude rather than host functions per method: crossing the Wasm boundary costs about
 * a microsecond per call plus handle bookkeeping, and header rules make dozens of reads and
 * writes. Here a header map crosses once, on first use in a turn, as one string joined by U+0001 (no header may contain control characters; strings cross
 * the boundary as C strings, so NUL cannot be the separator);
 * rules run on a plain array inside QuickJS; changes cross back once, at the end of the turn.
 * Every stream effect (headers, body, local reply) is held by the host until the turn ended
 * cleanly, so a hook that fails (throws, runs out of fuel or memory) leaves the stream as it was.
 *
 * Views are singletons re-pointed at the current stream by the host: they are valid during a
 * hook (and its async continuations), like proxy-wasm's context-bound calls.
 *
 * Dispatcher protocol, `dispatch(op, size, eos, prefetched)`:
 *   op 0..6   run the hook of that phase (see PHASE_OP). `prefetched`, when given, is the
 *             phase's own header map (the host passes it once the hook was seen reading it:
 *             one crossing saved per call). Returns the turn's outcome (below).
 *   op 7      a new turn begins (the host is about to run promise jobs)
 *   op 8      end of a job turn: returns the turn's outcome
 *
 * Outcome: a status digit (0 Continue, 1 Pause, 2 pending: the hook returned a promise and the
 * host holds the stream until it settles through `h.settle(call, status)` / `h.fail(call, ...)`,
 * `call` being the hook call's number, sent along as a `C<call>` effect: a promise job can run
 * during another request's turn, and must still settle its own request),
 * followed by effects, each introduced by U+0003: `H<kind>` U+0002 <flat header map> for a
 * header map the turn changed, `M<op>` U+0002 <name> U+0002 <value> for a metric update.
 * Effects ride on the return value because each host call costs a trampoline; a dozen header
 * rules and a counter then cost two crossings per hook. Metric updates of a hook that throws
 * are sent through `h.metric` before the exception leaves.
 */
export const PHASE_OP = {
  RequestHeaders: 0,
  RequestBody: 1,
  RequestTrailers: 2,
  ResponseHeaders: 3,
  ResponseBody: 4,
  ResponseTrailers: 5,
  Log: 6,
  BeginJobs: 7,
  EndJobs: 8,
} as const

/** Returned by the dispatcher when the hook returned a promise that has not settled yet. */
export const PENDING = 2

/** Header map kinds, as the host calls number them. */
export const HEADER_KIND = { request: 0, response: 1, requestTrailers: 2, responseTrailers: 3 } as const

/** Hook export names, by op. */
export const HOOK_NAMES = [
  'onRequestHeaders',
  'onRequestBody',
  'onRequestTrailers',
  'onResponseHeaders',
  'onResponseBody',
  'onResponseTrailers',
  'onLog',
] as const

/** Removes the routes to run host-supplied or filter-built strings as code, before the module loads. */
export const HARDEN_SOURCE = `(() => {
  'use strict';
  const refuse = function () { throw new TypeError('code generation from strings is disabled in filters') };
  const protos = [
    Function.prototype,
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(async function* () {}),
  ];
  for (const p of protos) Object.defineProperty(p, 'constructor', { value: refuse, writable: false, configurable: false });
  Object.defineProperty(globalThis, 'Function', { value: refuse, writable: false, configurable: false });
  delete globalThis.eval;
})()`

/**
 * `(h, ns, grants, filterName, configJson) => dispatch`; `dispatch.mask` is the bitmask of
 * `Phase` values the module has hooks for, `dispatch.declared` the comma-separated
 * capabilities the module declares it needs (`export const capabilities = [...]`), or ''.
 */
export const PRELUDE_SOURCE = `(function (h, ns, grants, filterName, configJson) {
  'use strict';
  const G = new Set(grants === '' ? [] : grants.split(','));
  const SEP = '\\u0001';
  const BAD = /[\\u0000-\\u0003\\r\\n]/;
  let turn = 0;
  // Changed views and metric updates of the current turn: arrays reused, with counters (an
  // allocation per call costs more than it looks in the interpreter).
  const dirty = [];
  let nd = 0;

  const deepFreeze = (o) => {
    if (o && typeof o === 'object' && !Object.isFrozen(o)) { Object.freeze(o); for (const k of Object.keys(o)) deepFreeze(o[k]); }
    return o;
  };
  // Lower-casing is a built-in call (costly in the interpreter); names repeat, so cache them.
  const LC = { __proto__: null };
  let lcSize = 0;
  const lc = (n) => {
    let v = LC[n];
    if (v === undefined) { v = String(n).toLowerCase(); if (lcSize < 512) { LC[n] = v; lcSize++; } }
    return v;
  };
  // Header names and values are validated by the host when a turn's changes arrive (a filter
  // could replace the built-ins used here); this check only serves encodePairs' early errors.
  const check = (s, what) => { if (BAD.test(s)) throw new TypeError('invalid header ' + what); return s; };

  // _f: the flat [name, value, ...] array of this turn. Lookups scan it with
  // Array.prototype.indexOf, which runs in C: a name -> index object costs more to build
  // (an atom and a shape change per entry, rebuilt whenever entries shift) than a dozen
  // rules save with it.
  function Headers(kind) { this._k = kind; this._f = null; this._t = -1; this._d = false; }
  Headers.prototype._load = function () {
    if (this._t !== turn) { const s = h.hget(this._k); this._f = s === '' ? [] : s.split(SEP); this._t = turn; this._d = false; }
    return this._f;
  };
  // A hit at an odd index is a value equal to the name: skip it.
  const find = (f, name, from) => {
    let i = f.indexOf(name, from);
    while (i !== -1 && (i & 1) === 1) i = f.indexOf(name, i + 1);
    return i;
  };
  const readers = {
    // Hot path: one call per lookup (helpers inlined; calls are what the interpreter pays for).
    get(name) {
      if (this._t !== turn) this._load();
      let n = LC[name];
      if (n === undefined) n = lc(name);
      const f = this._f;
      let i = f.indexOf(n);
      if (i > 0 && (i & 1) === 1) i = find(f, n, i + 1);
      return i === -1 ? undefined : f[i + 1];
    },
    getAll(name) { name = lc(name); const f = this._load(); const out = []; for (let i = find(f, name, 0); i !== -1; i = find(f, name, i + 2)) out.push(f[i + 1]); return out; },
    has(name) {
      if (this._t !== turn) this._load();
      let n = LC[name];
      if (n === undefined) n = lc(name);
      const f = this._f;
      let i = f.indexOf(n);
      if (i > 0 && (i & 1) === 1) i = find(f, n, i + 1);
      return i !== -1;
    },
    entries() { const f = this._load(); const out = []; for (let i = 0; i < f.length; i += 2) out.push([f[i], f[i + 1]]); return out; },
    keys() { const f = this._load(); const out = []; for (let i = 0; i < f.length; i += 2) out.push(f[i]); return out; },
  };
  const writers = {
    set(name, value) {
      let n = LC[name];
      name = n === undefined ? lc(name) : n;
      if (typeof value !== 'string') value = String(value);
      if (this._t !== turn) this._load();
      const f = this._f;
      let i = f.indexOf(name);
      if (i > 0 && (i & 1) === 1) i = find(f, name, i + 1);
      if (i === -1) f.push(name, value);
      else {
        f[i + 1] = value;
        for (let j = find(f, name, i + 2); j !== -1; j = find(f, name, j)) f.splice(j, 2);
      }
      if (!this._d) { this._d = true; dirty[nd++] = this; }
    },
    add(name, value) {
      let n = LC[name];
      name = n === undefined ? lc(name) : n;
      if (this._t !== turn) this._load();
      this._f.push(name, typeof value === 'string' ? value : String(value));
      if (!this._d) { this._d = true; dirty[nd++] = this; }
    },
    remove(name) {
      let n = LC[name];
      name = n === undefined ? lc(name) : n;
      if (this._t !== turn) this._load();
      const f = this._f;
      let i = f.indexOf(name);
      if (i > 0 && (i & 1) === 1) i = find(f, name, i + 1);
      if (i === -1) return false;
      for (;;) {
        f.splice(i, 2);
        i = f.indexOf(name, i);
        if (i > 0 && (i & 1) === 1) i = find(f, name, i + 1);
        if (i === -1) break;
      }
      if (!this._d) { this._d = true; dirty[nd++] = this; }
      return true;
    },
  };
  if (G.has('headers:read')) Object.assign(Headers.prototype, readers);
  if (G.has('headers:write')) Object.assign(Headers.prototype, writers);
  // Defined only with a headers grant (a defined accessor is non-configurable: it cannot be
  // deleted afterwards, and strict mode throws trying).
  if (G.has('headers:read') || G.has('headers:write')) Object.defineProperty(Headers.prototype, 'size', { get() { return this._load().length >>> 1; } });

  const pm = [];
  let np = 0;
  const DIGIT = ['0', '1', '2'];
  const HPRE = ['\u0003H0\u0002', '\u0003H1\u0002', '\u0003H2\u0002', '\u0003H3\u0002'];
  const effects = (status) => {
    if (nd === 0 && np === 0) return status;
    let out = DIGIT[status];
    for (let i = 0; i < nd; i++) {
      const v = dirty[i];
      if (v._d && v._t === turn) out += HPRE[v._k] + v._f.join(SEP);
      v._d = false;
    }
    nd = 0;
    for (let i = 0; i < np; i += 3) out += '\u0003M' + pm[i] + '\u0002' + pm[i + 1] + '\u0002' + pm[i + 2];
    np = 0;
    return out;
  };
  const metricsToHost = () => {
    const n = np;
    np = 0;
    for (let i = 0; i < n; i += 3) h.metric(pm[i], pm[i + 1], pm[i + 2]);
  };

  function Message(kind, trailerKind, isRequest) {
    this.headers = new Headers(kind);
    this.trailers = new Headers(trailerKind);
    this._b = isRequest ? 0 : 1;
  }
  // headers.get inlined (one call per read, not two); anything but our own Headers (a filter
  // may replace req.headers) goes through its own get, as before.
  const pseudo = (n) => function () {
    const hd = this.headers;
    if (hd === null || typeof hd !== 'object' || hd._f === undefined) return hd.get(n);
    if (hd._t !== turn) hd._load();
    const f = hd._f;
    let i = f.indexOf(n);
    if (i > 0 && (i & 1) === 1) i = find(f, n, i + 1);
    return i === -1 ? undefined : f[i + 1];
  };
  if (G.has('headers:read')) {
    Object.defineProperties(Message.prototype, {
      method: { get: pseudo(':method') },
      path: { get: pseudo(':path') },
      authority: { get: pseudo(':authority') },
      scheme: { get: pseudo(':scheme') },
      status: { get() { const s = this.headers.get(':status'); return s === undefined ? undefined : Number(s); } },
    });
  }
  if (G.has('body:read')) {
    Object.defineProperty(Message.prototype, 'body', { get() { return new Uint8Array(h.body(this._b)); } });
    Message.prototype.text = function () { return h.bodyText(this._b); };
    Message.prototype.json = function () { return JSON.parse(h.bodyText(this._b)); };
  }
  if (G.has('body:write')) {
    Message.prototype.setBody = function (b) {
      if (typeof b === 'string') h.setBody(this._b, b, 0);
      else if (b instanceof Uint8Array) h.setBody(this._b, b.slice().buffer, 1);
      else if (b instanceof ArrayBuffer) h.setBody(this._b, b.slice(0), 1);
      else h.setBody(this._b, JSON.stringify(b), 0);
    };
  }

  const request = new Message(0, 2, true);
  const response = new Message(1, 3, false);
  const config = deepFreeze(configJson === '' ? undefined : JSON.parse(configJson));

  const encodePairs = (hs) => {
    if (hs === undefined || hs === null) return '';
    const out = [];
    const list = Array.isArray(hs) ? hs : Object.entries(hs);
    for (const [k, v] of list) out.push(check(lc(k), 'name'), check(String(v), 'value'));
    return out.join(SEP);
  };
  const pairsView = (flat) => ({
    get(n) { n = lc(n); for (let i = 0; i < flat.length; i += 2) if (flat[i] === n) return flat[i + 1]; return undefined; },
    getAll(n) { n = lc(n); const o = []; for (let i = 0; i < flat.length; i += 2) if (flat[i] === n) o.push(flat[i + 1]); return o; },
    entries() { const o = []; for (let i = 0; i < flat.length; i += 2) o.push([flat[i], flat[i + 1]]); return o; },
  });

  const ctx = { filterName, config, request, response, endOfStream: false, bodySize: 0 };
  if (G.has('local-reply')) {
    ctx.reply = (status, body, headers) => {
      let hs = encodePairs(headers);
      if (body === undefined || body === null) h.reply(status | 0, '', 0, hs);
      else if (typeof body === 'string') h.reply(status | 0, body, 0, hs);
      else if (body instanceof Uint8Array) h.reply(status | 0, body.slice().buffer, 1, hs);
      else if (body instanceof ArrayBuffer) h.reply(status | 0, body.slice(0), 1, hs);
      else {
        const lower = hs.split(SEP);
        if (!lower.some((n, i) => i % 2 === 0 && n === 'content-type')) hs = hs === '' ? 'content-type' + SEP + 'application/json' : hs + SEP + 'content-type' + SEP + 'application/json';
        h.reply(status | 0, JSON.stringify(body), 0, hs);
      }
      return 0;
    };
  }
  if (G.has('properties')) ctx.property = (path) => h.prop(Array.isArray(path) ? path.map(String).join('.') : String(path));
  if (G.has('metrics')) {
    const upd = (op, name, v) => {
      if (typeof name !== 'string') name = String(name);
      if (v !== v || v === Infinity || v === -Infinity) throw new TypeError('metric value must be a finite number');
      pm[np] = op; pm[np + 1] = name; pm[np + 2] = v;
      np += 3;
    };
    ctx.metrics = Object.freeze({
      increment(name, by) {
        if (by === undefined && typeof name === 'string') { pm[np] = 0; pm[np + 1] = name; pm[np + 2] = 1; np += 3; return; }
        upd(0, name, by === undefined ? 1 : typeof by === 'number' ? by : Number(by));
      },
      set(name, v) { upd(1, name, Number(v)); },
      observe(name, v) { upd(2, name, Number(v)); },
    });
  }
  if (G.has('log')) {
    const log = (lvl) => (...args) => h.log(lvl, args.map((a) => typeof a === 'string' ? a : JSON.stringify(a)).join(' '));
    ctx.log = Object.freeze({ debug: log(0), info: log(1), warn: log(2), error: log(3) });
  }
  if (G.has('shared-data')) {
    ctx.sharedData = Object.freeze({
      get(key) { const s = h.sget(String(key)); if (s === undefined) return undefined; const i = s.indexOf(SEP); return { cas: Number(s.slice(0, i)), value: s.slice(i + 1) }; },
      set(key, value, cas) { return h.sset(String(key), String(value), cas === undefined ? 0 : Number(cas)); },
    });
  }
  if (G.has('http-callout')) {
    ctx.httpCall = (cluster, opts) => {
      opts = opts || {};
      const hs = [':method', String(opts.method || 'GET'), ':path', String(opts.path || '/')];
      const extra = encodePairs(opts.headers);
      const body = opts.body === undefined ? '' : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      const p = h.call(String(cluster), hs.join(SEP) + (extra === '' ? '' : SEP + extra), body, opts.timeoutMs === undefined ? 5000 : Number(opts.timeoutMs));
      return p.then((s) => {
        const cut = s.indexOf('\\u0002');
        const flat = cut === 0 ? [] : s.slice(0, cut).split(SEP);
        const headers = pairsView(flat);
        return { status: Number(headers.get(':status')), headers, body: s.slice(cut + 1) };
      });
    };
  }
  deepFreeze(ctx.request.constructor.prototype);
  Object.freeze(Headers.prototype);
  Object.seal(ctx);

  const hooks = [];
  const names = ${JSON.stringify(HOOK_NAMES)};
  let mask = 0;
  for (let i = 0; i < names.length; i++) {
    const f = ns[names[i]];
    hooks.push(typeof f === 'function' ? f : undefined);
    if (typeof f === 'function') mask |= 1 << i;
  }
  const status = (r) => (r === 1 || r === 'pause' ? 1 : 0);
  const dropDirty = () => { for (let i = 0; i < nd; i++) dirty[i]._d = false; nd = 0; };

  const primary = [request.headers, request.headers, request.trailers, response.headers, response.headers, response.trailers, undefined];
  let calls = 0;
  const dispatch = function (op, size, eos, pre) {
    // End of a job turn: report that turn's changes before anything moves on.
    if (op === 8) return effects(0);
    turn++;
    if (op === 7) {
      dropDirty(); np = 0;
      return 0;
    }
    if (nd !== 0) dropDirty();
    np = 0;
    const call = ++calls;
    ctx.endOfStream = eos;
    ctx.bodySize = size;
    if (pre !== undefined) { const v = primary[op]; v._f = pre === '' ? [] : pre.split(SEP); v._t = turn; v._d = false; }
    const fn = hooks[op];
    if (fn === undefined) return 0;
    let r;
    try {
      r = fn(op < 3 ? request : response, ctx);
    } catch (e) {
      dropDirty();
      metricsToHost();
      throw e;
    }
    if (r !== null && typeof r === 'object' && typeof r.then === 'function') {
      r.then(
        (v) => { h.settle(call, status(v)); },
        (e) => {
          dropDirty();
          metricsToHost();
          const isErr = e !== null && typeof e === 'object';
          h.fail(call, isErr && e.name !== undefined ? String(e.name) : 'Error', isErr && e.message !== undefined ? String(e.message) : String(e), isErr && e.stack !== undefined ? String(e.stack) : '');
        },
      );
      const out = effects(2);
      return (typeof out === 'number' ? '2' : out) + '\u0003C' + call;
    }
    return effects(status(r));
  };
  dispatch.mask = mask;
  // What the module says it needs (optional): the host refuses to load it if the grant is smaller.
  dispatch.declared = Array.isArray(ns.capabilities) ? ns.capabilities.map(String).join(',') : '';
  return dispatch;
})`

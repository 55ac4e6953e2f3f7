/**
 * The conformance corpus: requests and the decision the policy (policy.js and
 * as/assembly/index.ts) must give for each, whatever host runs it. A case states what must
 * hold; on top of that, every host must produce exactly the same final request headers,
 * response headers, status, reply headers and body as every other host.
 */
export interface Case {
  name: string
  method?: string
  path: string
  headers?: [string, string][]
  /** Response the "upstream" gives when the request is not answered locally. */
  response?: { status: number; headers: string[] }
  expect: {
    /** 'upstream' or the local reply status. */
    status: number | 'upstream'
    /** Local reply body, parsed as JSON. */
    json?: unknown
    /** Request headers that must have exactly these values (all of them, in order). */
    request?: Record<string, string[]>
    /** Request headers that must be absent. */
    absent?: string[]
    /** Response headers that must have these values. */
    response?: Record<string, string[]>
  }
}

const UPSTREAM = { status: 200, headers: ['server', 'nginx', 'content-type', 'text/plain', 'x-up', '1'] }

export const CORPUS: Case[] = [
  {
    name: 'plain request: the default rules apply',
    path: '/',
    response: UPSTREAM,
    expect: {
      status: 'upstream',
      request: { 'x-policy': ['v1'], 'x-forwarded-host': ['example.com'], 'x-path-length': ['1'] },
      absent: ['x-api', 'x-bot', 'x-new'],
      response: { 'x-served-by': ['omnirelay'], server: [], 'x-up': ['1'] },
    },
  },
  { name: 'TRACE is refused', method: 'TRACE', path: '/anything', expect: { status: 405, json: { error: 'method_not_allowed', method: 'TRACE' } } },
  { name: '/admin is forbidden', path: '/admin', expect: { status: 403, json: { error: 'forbidden', path: '/admin' } } },
  { name: '/admin/ subtree (and prefix match) is forbidden', path: '/administrator/x?y=1', expect: { status: 403, json: { error: 'forbidden', path: '/administrator/x?y=1' } } },
  { name: 'x-block header is refused', path: '/ok', headers: [['x-block', 'yes']], expect: { status: 403, json: { error: 'blocked' } } },
  { name: 'TRACE wins over /admin (rule order)', method: 'TRACE', path: '/admin', expect: { status: 405, json: { error: 'method_not_allowed', method: 'TRACE' } } },
  {
    name: 'secrets are stripped',
    path: '/s',
    headers: [['x-internal-secret', 'a'], ['proxy-authorization', 'Basic x'], ['x-internal-secret', 'b']],
    response: UPSTREAM,
    expect: { status: 'upstream', absent: ['x-internal-secret', 'proxy-authorization'] },
  },
  {
    name: 'x-policy is appended to an existing one',
    path: '/p',
    headers: [['x-policy', 'client']],
    response: UPSTREAM,
    expect: { status: 'upstream', request: { 'x-policy': ['client', 'v1'] } },
  },
  {
    name: 'x-forwarded-host replaces every client value',
    path: '/f',
    headers: [['x-forwarded-host', 'evil'], ['x-forwarded-host', 'evil2']],
    response: UPSTREAM,
    expect: { status: 'upstream', request: { 'x-forwarded-host': ['example.com'] } },
  },
  { name: '/api/ gets x-api', path: '/api/v1/users', response: UPSTREAM, expect: { status: 'upstream', request: { 'x-api': ['1'], 'x-path-length': ['13'] } } },
  { name: '/api without slash does not', path: '/api', response: UPSTREAM, expect: { status: 'upstream', absent: ['x-api'] } },
  {
    name: 'x-old is renamed to x-new',
    path: '/r',
    headers: [['x-old', 'legacy'], ['x-new', 'stale']],
    response: UPSTREAM,
    expect: { status: 'upstream', request: { 'x-new': ['legacy'] }, absent: ['x-old'] },
  },
  { name: 'bots are marked', path: '/b', headers: [['user-agent', 'Googlebot/2.1']], response: UPSTREAM, expect: { status: 'upstream', request: { 'x-bot': ['1'] } } },
  { name: 'browsers are not', path: '/b', headers: [['user-agent', 'Mozilla/5.0']], response: UPSTREAM, expect: { status: 'upstream', absent: ['x-bot'] } },
  {
    name: 'tenant is checked',
    path: '/t',
    headers: [['x-tenant', 'acme'], ['x-tenant-checked', 'forged']],
    response: UPSTREAM,
    expect: { status: 'upstream', request: { 'x-tenant-checked': ['tenant-acme'] } },
  },
  {
    name: 'header names are case-insensitive',
    path: '/c',
    headers: [['X-Old', 'v'], ['X-Internal-Secret', 's'], ['User-Agent', 'somebot']],
    response: UPSTREAM,
    expect: { status: 'upstream', request: { 'x-new': ['v'], 'x-bot': ['1'] }, absent: ['x-old', 'x-internal-secret'] },
  },
  {
    name: 'everything at once',
    method: 'POST',
    path: '/api/orders?id=7',
    headers: [['x-old', 'o'], ['user-agent', 'bot'], ['x-tenant', 't1'], ['proxy-authorization', 'x'], ['x-policy', 'p']],
    response: { status: 201, headers: ['server', 'a', 'server', 'b', 'location', '/api/orders/7'] },
    expect: {
      status: 'upstream',
      request: { 'x-api': ['1'], 'x-new': ['o'], 'x-bot': ['1'], 'x-tenant-checked': ['tenant-t1'], 'x-policy': ['p', 'v1'], 'x-path-length': ['16'] },
      absent: ['proxy-authorization', 'x-old'],
      response: { server: [], 'x-served-by': ['omnirelay'], location: ['/api/orders/7'] },
    },
  },
]

/** Metrics the policy must have counted after the whole corpus ran once. */
export const EXPECTED_METRICS = {
  policy_requests: CORPUS.length,
  policy_denied: CORPUS.filter((c) => c.expect.status !== 'upstream').length,
}

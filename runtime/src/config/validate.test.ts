import { describe, expect, it } from 'vitest'
import { ConfigError } from './errors.ts'
import { parseConfig } from './load.ts'
import { redactConfig } from './redact.ts'

function issues(text: string): string[] {
  try {
    parseConfig(text, '/tmp')
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError)
    return (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`)
  }
  throw new Error('expected a ConfigError')
}

const base = `
listeners: [{ name: main, port: 8080 }]
clusters:
  - name: web
    endpoints: ["127.0.0.1:3000"]
`

describe('validateConfig', () => {
  it('applies defaults to a minimal config', () => {
    const cfg = parseConfig(base + 'routes: [{ match: { prefix: / }, cluster: web }]', '/tmp')
    expect(cfg.workers).toBe(1)
    expect(cfg.allowUnsigned).toBe(false)
    expect(cfg.listeners[0]).toMatchObject({ address: '0.0.0.0', mode: 'edge', http2: false, filters: [] })
    expect(cfg.clusters[0]).toMatchObject({ loadBalancing: 'round-robin', endpoints: [{ host: '127.0.0.1', port: 3000 }] })
    expect(cfg.routes[0]!.policy.requestTimeoutMs).toBeGreaterThan(0)
    expect(cfg.accessLog.target).toBe('stdout')
  })

  it('names the path and the problem for an unknown cluster', () => {
    const text = base + `routes:\n  - { match: { prefix: /a }, cluster: web }\n  - { match: { prefix: /b }, cluster: web }\n  - { match: { prefix: /c }, cluster: api }\n`
    expect(issues(text)).toContain('routes[2].cluster: unknown cluster "api"')
  })

  it('reports every problem at once', () => {
    const out = issues(`
workers: 0
listeners: [{ port: 99999, mode: gateway }]
routes: [{ match: { prefix: x, regex: "(" } }]
filters: [{ name: f, kind: lua, module: a.js, capabilities: [teleport] }]
`)
    expect(out).toEqual(
      expect.arrayContaining([
        'workers: must be between 1 and 256, got 0',
        'listeners[0].port: must be between 0 and 65535, got 99999',
        expect.stringMatching(/^listeners\[0\]\.mode: must be one of/),
        expect.stringMatching(/^routes\[0\]\.match: use one of/),
        expect.stringMatching(/^routes\[0\]\.match\.regex: invalid regular expression/),
        expect.stringMatching(/^routes\[0\]: needs an action/),
        expect.stringMatching(/^filters\[0\]\.kind: must be one of/),
        expect.stringMatching(/^filters\[0\]\.capabilities\[0\]: unknown capability "teleport"/),
        expect.stringMatching(/^filters\[0\]\.module: plain modules load only with allowUnsigned/),
      ]),
    )
  })

  it('catches typos and dangling references', () => {
    const out = issues(
      base +
        `
routes: [{ match: { prefix: / }, cluster: web, filter: [x], filters: [nope], listeners: [ghost] }]
filters: [{ name: a, kind: wasm, bundle: a.bundle, calloutClusters: [zzz] }]
`,
    )
    expect(out).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^routes\[0\]\.filter: unknown field/),
        'routes[0].filters[0]: unknown filter "nope"',
        'routes[0].listeners[0]: unknown listener "ghost"',
        'filters[0].calloutClusters[0]: unknown cluster "zzz"',
        'filters[0].calloutClusters: needs the "http-callout" capability',
      ]),
    )
  })

  it('rejects garbage without throwing anything but ConfigError', () => {
    for (const junk of ['', 'null', '42', '[1,2]', '{{{', ':\n  - : :', '\u0000\u0001binary', 'listeners: 5']) {
      expect(issues(junk).length).toBeGreaterThan(0)
    }
  })

  it('rejects duplicate names and conflicting actions', () => {
    const out = issues(`
listeners: [{ name: a, port: 1 }, { name: a, port: 1 }]
clusters: [{ name: c, endpoints: ["h:1"] }]
routes: [{ match: {}, cluster: c, directResponse: { status: 200 } }]
`)
    expect(out).toEqual(
      expect.arrayContaining([
        'listeners[1].name: duplicate name "a"',
        expect.stringMatching(/^listeners\[1\]\.port: 0\.0\.0\.0:1 is also used/),
        'routes[0]: has cluster and directResponse: choose one action',
      ]),
    )
  })

  it('redacts secrets for display', () => {
    const cfg = parseConfig(
      base + `allowUnsigned: true\nallowNative: true\nroutes: [{ match: {}, cluster: web }]\nfilters: [{ name: f, kind: native, module: f.js, config: { token: abc, nested: { password: p } } }]`,
      '/tmp',
    )
    const shown = JSON.stringify(redactConfig(cfg))
    expect(shown).not.toContain('abc')
    expect(shown).not.toMatch(/"password":"p"/)
  })
})

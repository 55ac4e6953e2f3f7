import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createLogger } from '../observability/logger.ts'
import { MetricsRegistry } from '../observability/metrics.ts'
import { BundleErrorCode } from './errors.ts'
import { RevocationList } from './revocation-list.ts'
import { RevocationPoller, type RevocationFetch } from './revocation-poller.ts'

const D1 = `sha256:${'a'.repeat(64)}`
const D2 = `sha256:${'b'.repeat(64)}`

describe('RevocationList', () => {
  it('refuses revoked digests (any spelling) and signers with their codes', () => {
    const l = new RevocationList()
    expect(l.check(D1, 'k1')).toBeUndefined()
    expect(l.replace({ serial: 1, digests: [D1.toUpperCase().replace('SHA256:', 'sha256:')], signers: ['k2'] })).toBe(true)
    expect(l.check(D1, 'k1')).toBe(BundleErrorCode.BundleRevoked)
    expect(l.check('a'.repeat(64), 'k1')).toBe(BundleErrorCode.BundleRevoked)
    expect(l.check(D2, 'k2')).toBe(BundleErrorCode.SignerRevoked)
    expect(l.check(D2, 'k1')).toBeUndefined()
  })

  it('never rolls back to a lower serial; a serial bump with the same set is no change', () => {
    const l = new RevocationList()
    l.replace({ serial: 5, digests: [D1], signers: [] })
    expect(l.replace({ serial: 4, digests: [], signers: [] })).toBe(false)
    expect(l.check(D1, 'x')).toBe(BundleErrorCode.BundleRevoked)
    expect(l.replace({ serial: 6, digests: [D1], signers: [] })).toBe(false)
    expect(l.serial).toBe(6)
  })
})

describe('RevocationPoller', () => {
  let dir: string
  const log = createLogger({ level: 'error', write: () => {} })
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'revpoll-'))
  })
  afterEach(() => rm(dir, { recursive: true, force: true }))

  function poller(fetch: RevocationFetch, metrics = new MetricsRegistry(), onChange?: () => void) {
    return new RevocationPoller({ url: 'http://127.0.0.1:1', intervalMs: 60_000, file: join(dir, 'r.json'), log, metrics, fetch, ...(onChange ? { onChange } : {}) })
  }

  it('takes a changed list, persists it, sends the ETag next time, keeps it when polls fail', async () => {
    const seen: (string | undefined)[] = []
    let answer: 'list' | '304' | 'fail' = 'list'
    const fetch: RevocationFetch = async (_url, o) => {
      seen.push(o.etag)
      if (answer === 'fail') throw Object.assign(new Error('down'), { code: 'unreachable' })
      if (answer === '304') return { changed: false, etag: o.etag ?? '' }
      return { changed: true, etag: '"revocations-1"', list: { serial: 1, digests: [D1], signers: ['k9'] } }
    }
    const metrics = new MetricsRegistry()
    let changes = 0
    const p = poller(fetch, metrics, () => void changes++)
    await p.pollNow()
    expect(changes).toBe(1)
    expect(JSON.parse(await readFile(join(dir, 'r.json'), 'utf8'))).toMatchObject({ serial: 1, digests: [D1], signers: ['k9'], etag: '"revocations-1"' })
    answer = '304'
    await p.pollNow()
    answer = 'fail'
    await p.pollNow()
    await p.stop()
    expect(seen).toEqual([undefined, '"revocations-1"', '"revocations-1"'])
    expect(changes).toBe(1)
    expect(p.list.check(D1, 'x')).toBe(BundleErrorCode.BundleRevoked)
    const text = metrics.render()
    expect(text).toContain('omnirelay_revocation_polls_total{result="failed"} 1')
    expect(text).toContain('omnirelay_revocation_polls_total{result="unchanged"} 1')
    expect(text).toContain('omnirelay_bundles_revoked{kind="signer"} 1')
    // A new node process starts from the persisted list.
    const fresh = poller(async () => {
      throw new Error('down')
    })
    await fresh.loadPersisted()
    expect(fresh.list.check(D2, 'k9')).toBe(BundleErrorCode.SignerRevoked)
  })

  it('a damaged persisted file is ignored (logged), never a crash', async () => {
    await writeFile(join(dir, 'r.json'), '{"serial": "nope"')
    const p = poller(async () => ({ changed: false, etag: '' }))
    await p.loadPersisted()
    expect(p.list.serial).toBe(-1)
  })

  it('a registry that never answers times out as a failed poll', async () => {
    const metrics = new MetricsRegistry()
    const p = new RevocationPoller({ url: 'x', intervalMs: 60_000, timeoutMs: 50, file: join(dir, 'r.json'), log, metrics, fetch: () => new Promise(() => {}) })
    await p.pollNow()
    await p.stop()
    expect(metrics.render()).toContain('omnirelay_revocation_polls_total{result="failed"} 1')
  })
})

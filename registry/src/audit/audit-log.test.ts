import { describe, expect, it } from 'vitest'
import { openDatabase } from '../storage/database.ts'
import { AuditLog, GENESIS_HASH } from './audit-log.ts'

function log(): AuditLog {
  return new AuditLog(openDatabase(':memory:'))
}

describe('AuditLog', () => {
  it('chains entries from the genesis hash and verifies', () => {
    const a = log()
    expect(a.verify()).toEqual({ ok: true, entries: 0, head: { seq: 0, hash: GENESIS_HASH } })
    const e1 = a.append({ actor: 'token:ci', action: 'publish', subject: 'x@1.0.0', digest: 'sha256:aa', result: 'admitted' })
    const e2 = a.append({ actor: 'local', action: 'yank', subject: 'x@1.0.0', result: 'ok', detail: { reason: 'r' } })
    expect(e1.prevHash).toBe(GENESIS_HASH)
    expect(e2.prevHash).toBe(e1.hash)
    expect(a.head()).toEqual({ seq: 2, hash: e2.hash })
    expect(a.list()).toHaveLength(2)
    expect(a.list(1)[0]).toMatchObject({ seq: 2, detail: { reason: 'r' } })
    expect(a.verify().ok).toBe(true)
  })

  it('catches a head that does not match an external anchor', () => {
    const a = log()
    const e = a.append({ actor: 'a', action: 'publish', subject: 's', result: 'admitted' })
    expect(a.verify({ seq: 1, hash: e.hash }).ok).toBe(true)
    expect(a.verify({ seq: 2, hash: 'f'.repeat(64) })).toMatchObject({ ok: false, problem: { seq: 2, reason: 'entry_missing' } })
    expect(a.verify({ seq: 1, hash: 'f'.repeat(64) })).toMatchObject({ ok: false, problem: { seq: 1, reason: 'head_mismatch' } })
  })
})

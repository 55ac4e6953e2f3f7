import { describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { migrate, openDatabase, schemaVersion } from './database.ts'
import { MIGRATIONS } from './migrations.ts'

describe('migrations', () => {
  it('apply once, survive reopen, and refuse a database newer than the code', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshkit-db-'))
    try {
      const file = join(dir, 'r.sqlite')
      let db = openDatabase(file)
      expect(schemaVersion(db)).toBe(MIGRATIONS.length)
      db.close()
      db = openDatabase(file)
      expect(migrate(db, MIGRATIONS)).toEqual([])
      const next = [...MIGRATIONS, { version: MIGRATIONS.length + 1, description: 'test', sql: 'CREATE TABLE extra (x INTEGER)' }]
      expect(migrate(db, next)).toEqual([MIGRATIONS.length + 1])
      db.close()
      expect(() => openDatabase(file)).toThrow(expect.objectContaining({ code: 'storage_corrupt' }))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

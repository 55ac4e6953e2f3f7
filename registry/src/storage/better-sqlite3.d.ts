// Minimal typings for the parts of better-sqlite3 12 the registry uses (the package ships none
// and @types/better-sqlite3 is not installed).
declare module 'better-sqlite3' {
  namespace BetterSqlite3 {
    interface RunResult {
      changes: number
      lastInsertRowid: number | bigint
    }
    interface Statement<R = unknown> {
      run(...params: unknown[]): RunResult
      get(...params: unknown[]): R | undefined
      all(...params: unknown[]): R[]
    }
    interface Transaction<F extends (...args: never[]) => unknown> {
      (...args: Parameters<F>): ReturnType<F>
      immediate(...args: Parameters<F>): ReturnType<F>
    }
    interface Database {
      prepare<R = unknown>(sql: string): Statement<R>
      exec(sql: string): Database
      pragma(sql: string, opts?: { simple?: boolean }): unknown
      transaction<F extends (...args: never[]) => unknown>(fn: F): Transaction<F>
      close(): void
      readonly open: boolean
    }
  }
  const Database: new (file: string, opts?: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => BetterSqlite3.Database
  export default Database
  export type { BetterSqlite3 }
}

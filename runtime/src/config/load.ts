/**
 * Reading a config file: bytes -> YAML/JSON document -> validated `ProxyConfig`.
 * JSON is a subset of YAML 1.2, so one parser handles both.
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import YAML from 'yaml'
import { ConfigError, ConfigErrorCode } from './errors.ts'
import type { ProxyConfig } from './types.ts'
import { validateConfig } from './validate.ts'

/** Parses config text (YAML or JSON). Throws `ConfigError` (`config_syntax` or `config_invalid`). */
export function parseConfig(text: string, baseDir: string): ProxyConfig {
  let doc: unknown
  try {
    const parsed = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true, logLevel: 'silent' })
    // Warnings (unknown tags...) would silently change meaning: treat them as errors too.
    const problem = parsed.errors[0] ?? parsed.warnings[0]
    if (problem) throw problem
    doc = parsed.toJS({ maxAliasCount: 100 })
  } catch (e) {
    const err = e as Error & { linePos?: [{ line: number; col: number }] }
    const at = err.linePos?.[0] ? `line ${err.linePos[0].line}, column ${err.linePos[0].col}` : ''
    throw new ConfigError(ConfigErrorCode.Syntax, [{ path: at, message: err.message.split('\n')[0] ?? 'syntax error' }], { cause: e })
  }
  return validateConfig(doc, baseDir)
}

/**
 * Reads and validates a config file.
 *
 * @example
 * const cfg = await loadConfigFile('omnirelay.yaml')
 */
export async function loadConfigFile(file: string): Promise<ProxyConfig> {
  const abs = resolve(file)
  let text: string
  try {
    text = await readFile(abs, 'utf8')
  } catch (e) {
    throw new ConfigError(ConfigErrorCode.Unreadable, [{ path: '', message: `cannot read ${abs}: ${(e as NodeJS.ErrnoException).code ?? 'error'}` }], {
      cause: e,
    })
  }
  return parseConfig(text, dirname(abs))
}

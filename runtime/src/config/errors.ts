/** One problem in a config file: where (`routes[2].cluster`) and what (`unknown cluster "api"`). */
export interface ConfigIssue {
  path: string
  message: string
}

/** Stable codes for config failures. */
export const ConfigErrorCode = {
  /** The file could not be read. */
  Unreadable: 'config_unreadable',
  /** The file is not valid YAML/JSON. */
  Syntax: 'config_syntax',
  /** The document parsed but breaks the schema or refers to unknown names. */
  Invalid: 'config_invalid',
  /** A filter named in the config could not be loaded or built. */
  FilterBuild: 'config_filter_build',
} as const
export type ConfigErrorCode = (typeof ConfigErrorCode)[keyof typeof ConfigErrorCode]

export class ConfigError extends Error {
  readonly code: ConfigErrorCode
  readonly issues: readonly ConfigIssue[]
  constructor(code: ConfigErrorCode, issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    super(issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('\n'), options)
    this.name = 'ConfigError'
    this.code = code
    this.issues = issues
  }
}

/** Plain-text tables for the CLI: columns padded to their widest cell. */

export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))))
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd()
  return [line(headers), ...cells.map(line)].join('\n') + '\n'
}

/** `sha256:abcdef…` shortened for tables. */
export function short(digest: string | null | undefined): string {
  return digest ? digest.slice(0, 19) : '-'
}

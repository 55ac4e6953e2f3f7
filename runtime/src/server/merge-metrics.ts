/**
 * Merges Prometheus text from several workers into one exposition: every sample gets a
 * `worker` label and each family's HELP/TYPE appears once, with its samples together.
 */
export function mergeWorkerMetrics(parts: { worker: string; text: string }[]): string {
  const families = new Map<string, { head: string[]; samples: string[] }>()
  for (const { worker, text } of parts) {
    let current: { head: string[]; samples: string[] } | undefined
    for (const line of text.split('\n')) {
      if (!line) continue
      if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
        const name = line.split(' ')[2]!
        let f = families.get(name)
        if (!f) {
          f = { head: [], samples: [] }
          families.set(name, f)
        }
        if (f.head.length < 2 && !f.head.includes(line)) f.head.push(line)
        current = f
        continue
      }
      if (!current) continue
      const brace = line.indexOf('{')
      const space = line.indexOf(' ')
      const label = `worker="${worker}"`
      current.samples.push(brace >= 0 && brace < space ? `${line.slice(0, brace + 1)}${label},${line.slice(brace + 1)}` : `${line.slice(0, space)}{${label}}${line.slice(space)}`)
    }
  }
  const out: string[] = []
  for (const f of families.values()) out.push(...f.head, ...f.samples)
  return out.join('\n') + '\n'
}

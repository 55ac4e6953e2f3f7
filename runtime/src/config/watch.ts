/**
 * Hot reload triggers: the config file changing on disk (editors that write in place and
 * ones that rename a temp file over it both work, because the directory is watched) and
 * SIGHUP. Changes are debounced; the callback decides what to do with the new file.
 */
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'

export interface ConfigWatcher {
  close(): void
}

/**
 * @param onChange called (debounced) after the file changed or SIGHUP arrived
 * @example
 * const w = watchConfig('omnirelay.yaml', () => reloadFromFile(), { sighup: true })
 */
export function watchConfig(file: string, onChange: () => void, opts: { file?: boolean; sighup?: boolean; debounceMs?: number } = {}): ConfigWatcher {
  const abs = resolve(file)
  const name = basename(abs)
  const delay = opts.debounceMs ?? 100
  let timer: NodeJS.Timeout | undefined
  const fire = () => {
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      onChange()
    }, delay)
  }
  let watcher: FSWatcher | undefined
  if (opts.file !== false) try {
    watcher = watch(dirname(abs), { persistent: false }, (_event, f) => {
      if (f === null || f.toString() === name) fire()
    })
    watcher.on('error', () => {})
  } catch {
    watcher = undefined
  }
  const onHup = () => fire()
  if (opts.sighup) process.on('SIGHUP', onHup)
  return {
    close() {
      watcher?.close()
      if (timer) clearTimeout(timer)
      if (opts.sighup) process.off('SIGHUP', onHup)
    },
  }
}

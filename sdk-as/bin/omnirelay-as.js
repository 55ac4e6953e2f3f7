#!/usr/bin/env node
// omnirelay-as: start and build AssemblyScript proxy-wasm filters.
//
//   omnirelay-as new <dir>             scaffold a filter project
//   omnirelay-as build [dir] [--debug] compile <dir>/assembly/index.ts to <dir>/build/filter.wasm
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { basename, join, relative, resolve } from 'node:path'
import { buildFilter } from '../build.js'

const USAGE = `usage:
  omnirelay-as new <dir>              scaffold a filter project in <dir>
  omnirelay-as build [dir] [--debug]  compile <dir>/assembly/index.ts to <dir>/build/filter.wasm
`

async function build(dir, optimize) {
  const entry = join(dir, 'assembly', 'index.ts')
  const outFile = join(dir, 'build', 'filter.wasm')
  const started = Date.now()
  const { wasm, imports } = await buildFilter({ entry, outFile, optimize })
  process.stdout.write(
    `built ${relative(process.cwd(), outFile) || outFile}: ${wasm.length} bytes in ${Date.now() - started} ms\n` +
      `imports: ${imports.map((i) => i.slice(4)).join(', ')}\n`,
  )
}

function scaffold(dir) {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    const err = new Error(`${dir} exists and is not empty`)
    err.code = 'SDK_AS_DIR_NOT_EMPTY'
    throw err
  }
  const name = basename(dir).toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'filter'
  const files = {
    'package.json': JSON.stringify(
      {
        name,
        version: '0.1.0',
        private: true,
        type: 'module',
        scripts: { build: 'omnirelay-as build', 'build:debug': 'omnirelay-as build --debug' },
        devDependencies: { '@omnirelay/sdk-as': '^0.1.0', assemblyscript: '^0.28.20' },
      },
      null,
      2,
    ) + '\n',
    // For editors and for running asc by hand; `omnirelay-as build` passes the same options itself.
    'asconfig.json': JSON.stringify(
      {
        entries: ['assembly/index.ts'],
        targets: {
          release: { outFile: 'build/filter.wasm', optimizeLevel: 3, shrinkLevel: 1, noAssert: true },
          debug: { outFile: 'build/filter.debug.wasm', debug: true },
        },
        options: {
          runtime: 'minimal',
          exportStart: '_initialize',
          use: [
            'abort=~lib/@omnirelay/sdk-as/assembly/abort/proxyAbort',
            'trace=~lib/@omnirelay/sdk-as/assembly/abort/proxyTrace',
            'seed=~lib/@omnirelay/sdk-as/assembly/abort/proxySeed',
          ],
          transform: ['@omnirelay/sdk-as/transform'],
        },
      },
      null,
      2,
    ) + '\n',
    'assembly/tsconfig.json': JSON.stringify({ extends: 'assemblyscript/std/assembly.json', include: ['./**/*.ts'] }, null, 2) + '\n',
    'assembly/index.ts': FILTER_TEMPLATE,
    '.gitignore': 'node_modules/\nbuild/\n',
    'omnirelay.yaml': proxyConfig(name),
    'README.md': readme(name),
  }
  for (const [file, text] of Object.entries(files)) {
    const path = join(dir, file)
    mkdirSync(join(path, '..'), { recursive: true })
    writeFileSync(path, text)
  }
  process.stdout.write(`created ${dir}\nnext: cd ${relative(process.cwd(), dir) || '.'} && npx omnirelay-as build\n`)
}

const FILTER_TEMPLATE = `// A proxy-wasm HTTP filter (ABI v0.2.1) written with @omnirelay/sdk-as.
// Config (JSON): { "header": "x-hello", "value": "world" }

// The ABI entry points the host calls; every filter re-exports them.
export * from "@omnirelay/sdk-as/exports";
import { Action, HttpContext, lowerAscii, registerRootContext, RootContext } from "@omnirelay/sdk-as";

/** Lives as long as the plugin: parses the configuration once. */
class Root extends RootContext {
  header: string = "x-hello";
  value: string = "world";

  onConfigure(configSize: u32): bool {
    const cfg = this.configJson();
    if (cfg === null || !cfg.isObject()) return false; // refuse bad config at load
    this.header = lowerAscii(cfg.getString("header", this.header));
    this.value = cfg.getString("value", this.value);
    return true;
  }

  newHttpContext(contextId: u32): HttpContext {
    return new Hello(contextId, this);
  }
}

/** One per request. */
class Hello extends HttpContext {
  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action {
    const root = this.root as Root;
    this.responseHeaders.set(root.header, root.value);
    return Action.Continue;
  }
}

registerRootContext((id: u32): RootContext => new Root(id));
`

function proxyConfig(name) {
  return `# Development config: runs build/filter.wasm unsigned in front of an app on 127.0.0.1:3000.
# omnirelay run --config omnirelay.yaml   then   curl -i localhost:8080/
allowUnsigned: true
listeners:
  - { name: main, port: 8080, filters: [${name}] }
clusters:
  - { name: app, endpoints: ["127.0.0.1:3000"] }
routes:
  - { match: { prefix: / }, cluster: app }
filters:
  - name: ${name}
    kind: wasm
    module: ./build/filter.wasm
    capabilities: [headers:read, headers:write, log]
    quotas: { fuel: 2000000, memoryBytes: 1048576, timeoutMs: 50 }
    config: { header: x-hello, value: world }
`
}

function readme(name) {
  return `# ${name}

An OmniRelay / proxy-wasm HTTP filter in AssemblyScript.

- \`npm run build\` compiles \`assembly/index.ts\` to \`build/filter.wasm\` (\`npm run build:debug\` keeps names).
- \`omnirelay run --config omnirelay.yaml\` runs it (development, unsigned) in front of an app
  on 127.0.0.1:3000; \`curl -i localhost:8080/\` shows \`x-hello: world\`.
- For production, pack it into a signed bundle: \`omnirelay bundle build .\`.
- The same \`build/filter.wasm\` runs in Envoy (\`envoy.filters.http.wasm\`, runtime \`envoy.wasm.runtime.v8\`).

See the @omnirelay/sdk-as README for the API.
`
}

const [command, ...rest] = process.argv.slice(2)
const flags = new Set(rest.filter((a) => a.startsWith('--')))
const args = rest.filter((a) => !a.startsWith('--'))

try {
  if (command === 'new' && args.length === 1) scaffold(resolve(args[0]))
  else if (command === 'build' && args.length <= 1) await build(resolve(args[0] ?? '.'), !flags.has('--debug'))
  else {
    process.stderr.write(USAGE)
    process.exit(2)
  }
} catch (err) {
  process.stderr.write(`omnirelay-as: ${err.code ?? 'error'}: ${err.message}\n`)
  if (err.diagnostics) process.stderr.write(err.diagnostics)
  process.exit(1)
}

/** The CLI's help text: what a new user needs to get a proxy running. */
export const HELP = `omnirelay — a sandboxed, extensible HTTP proxy

Usage:
  omnirelay run --config FILE [--workers auto|N] [--no-watch]
      Start the proxy. FILE is YAML or JSON (see docs/configuration.md).
      The config is reloaded when FILE changes or on SIGHUP; an invalid new file is
      logged and the running config keeps serving. SIGINT/SIGTERM drain gracefully.

  omnirelay run --xds HOST:PORT [--bootstrap FILE] [--data DIR] [--node-id ID] [--label KEY=VALUE]...
                [--trust-policy FILE] [--admin HOST:PORT] [--access-log TARGET] [--protocol delta|sotw]
                [--registry URL] [--workers auto|N]
      Take the config from MeshKit central over xDS (docs/central.md). Epochs apply atomically
      after their bundles are fetched and verified; what cannot apply is refused (NACK) and the
      running config keeps serving. Applied configs are kept in DIR (default ./omnirelay-data):
      with central unreachable, the proxy starts from the last-known-good one.
      --workers serves from N worker processes (auto: one per core); this process keeps the
      xDS client and admin server, and an epoch is ACKed only once every worker applied it
      (docs/xds.md).

  omnirelay validate FILE [--build]
      Check a config file and print every problem with its path, e.g.
        routes[2].cluster: unknown cluster "api"
      --build also loads, verifies and builds every filter, as a start would.
      Exit code 0 when valid, 1 when not.

  omnirelay bundle <command> ...
      Build, sign and verify filter bundles (see "omnirelay bundle --help").

  omnirelay --help | --version

A minimal config:

  listeners:
    - { name: main, port: 8080 }
  clusters:
    - { name: app, endpoints: ["127.0.0.1:3000"] }
  routes:
    - { match: { prefix: / }, cluster: app }
  admin: { port: 9901 }        # /ready /live /metrics /config

Logs go to stderr as JSON lines; the access log goes to stdout (accessLog: off|stdout|stderr|FILE).
`

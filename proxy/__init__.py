"""The trinfer daemon: config, CLI, lifecycle (one root nursery), routing, admission, the HTTP/SSE apps, auth.

The public surface used by the CLI, the tests and other parts of the proxy:

- `proxy.config`: `Config`, `ServerConfig`, `BackendConfig`, `ConfigError`, `config_from_mapping`, `load_config`
- `proxy.daemon`: `Daemon` (``run(task_status=...)``, ``request_stop()``, ``wait_ready()``), `StartupError`
- `proxy.cli`: ``main(argv) -> int`` (the ``trinfer`` entry point)
"""

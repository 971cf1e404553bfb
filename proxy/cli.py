"""The ``trinfer`` command line: ``trinfer serve [options]``.

Exit status: 0 after a graceful stop; 2 for a bad configuration (one line on stderr, nothing bound); 1 when
startup fails (a backend does not boot or not within ``ready_timeout_s``, a port cannot be bound: the
inference listener is never bound); 128 + the signal number when a second SIGINT/SIGTERM cancels at once.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import NoReturn

import trio

from adapters.registry import KINDS

from .config import ENV_VARIABLES, LOG_FORMATS, ConfigError, Flags, ServerConfig, load_config
from .daemon import Daemon, StartupError
from .logs import configure_logging, get_logger

log = get_logger("cli")

EXIT_OK = 0
EXIT_STARTUP = 1
EXIT_CONFIG = 2


def _wrapped(items: Sequence[str], indent: str) -> str:
    return textwrap.fill(", ".join(items), width=110, initial_indent=indent, subsequent_indent=indent)


SERVE_EPILOG = f"""\
precedence: flags, then environment variables, then the config file, then defaults.

environment variables:
{_wrapped(ENV_VARIABLES, "  ")}
  (TRINFER_API_KEYS is a comma-separated list; TRINFER_<KEY> sets the [server] key of the same name)

config file (TOML), every key optional except the backends' kind and models:
  [server]
{_wrapped([f.name for f in fields(ServerConfig)], "            ")}
  [[backends]]  name, kind ({" | ".join(KINDS)}), models = [...], priority (lower first), active, queue,
            plus the kind's own keys (mock: reply, token_delay_ms, boot_delay_ms, fail, fail_after_tokens,
            embed_dim; llamacpp: model_path, ...)
  see docs/configuration.md for every key, its default and meaning.

with no config file and no --backend, the embedded default (a small local model through llama.cpp) is served,
or trinfer says how to install it; `trinfer serve --backend mock` needs nothing.

signals: SIGINT/SIGTERM drain gracefully (stop_timeout_s), a second one stops at once.
exit status: 0 stopped, 1 startup failed, 2 bad configuration, 128+N stopped by a second signal N.
"""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit status 2 (bad configuration).

    argparse's default prints the whole usage block first; the CLI's contract is one clear line. Subcommand
    parsers are built from the same class (``add_subparsers`` uses the parent's class), so this covers both.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"trinfer: error: {message} (see `{self.prog} --help`)\n")


def version() -> str:
    """The installed distribution's version (``0+unknown`` when run from a source tree that is not installed)."""
    try:
        return importlib.metadata.version("trinfer")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="trinfer",
        description="trinfer: an OpenAI-compatible inference proxy (llama.cpp, Anthropic, mock) on trio.",
        epilog="Run `trinfer serve --help` for every option, environment variable and config key.",
    )
    parser.add_argument("--version", action="version", version=f"trinfer {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the server (OpenAI-compatible /v1 API plus an admin listener)",
        description="Run the trinfer server until SIGINT/SIGTERM.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--config", metavar="FILE", help="TOML config file (env: TRINFER_CONFIG)")
    serve.add_argument(
        "--host", metavar="H", help="address both listeners bind (default 127.0.0.1; env: TRINFER_HOST)"
    )
    serve.add_argument(
        "--port", metavar="P", type=int, help="inference listener port, 0 = any free (default 8080)"
    )
    serve.add_argument(
        "--admin-port", metavar="P", type=int, help="admin listener port, 0 = any free (default 8081)"
    )
    serve.add_argument(
        "--backend",
        metavar="KIND",
        choices=KINDS,
        help=f"serve one backend of this kind instead of the file's [[backends]] ({', '.join(KINDS)})",
    )
    serve.add_argument(
        "--model",
        metavar="PATH_OR_ID",
        help="model for --backend: mock: the model id to serve (default mock-echo); llamacpp: a .gguf path "
        "(served as the file's stem); anthropic: the model id. Without --backend, implies llamacpp",
    )
    serve.add_argument(
        "--model-id",
        metavar="ID",
        help="the id clients ask for to get --model (default: the file's stem for llamacpp, the model id itself "
        "for anthropic and mock; env: TRINFER_MODEL_ID)",
    )
    serve.add_argument(
        "--models-dir",
        metavar="PATH",
        help="serve every .gguf in this folder as a llamacpp model named after its file stem, loaded on demand "
        "(env: TRINFER_MODELS_DIR; options from the config's [llamacpp_defaults])",
    )
    serve.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="log level (default info)"
    )
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text lines, or one JSON object per line (default text; env: TRINFER_LOG_FORMAT)",
    )
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The ``trinfer`` entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    flags = Flags(
        config=args.config,
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        backend=args.backend,
        model=args.model,
        model_id=args.model_id,
        log_level=args.log_level,
        log_format=args.log_format,
        models_dir=args.models_dir,
    )
    try:
        config = load_config(flags, os.environ if env is None else env)
        daemon = Daemon(config)
    except ConfigError as exc:
        print(f"trinfer: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.server.log_level, config.api_keys, log_format=config.server.log_format)
    return trio.run(serve_until_signalled, daemon)


async def serve_until_signalled(daemon: Daemon) -> int:
    """Run ``daemon``; the first SIGINT/SIGTERM drains it, a second cancels everything."""
    exit_code = EXIT_OK
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

        async def watch() -> None:
            nonlocal exit_code
            seen = 0
            async for signum in signals:
                seen += 1
                name = signal.Signals(signum).name
                if seen == 1:
                    log.info("%s received: stopping gracefully (send it again to stop at once)", name)
                    daemon.request_stop()
                else:
                    log.warning("%s received again: stopping at once", name)
                    exit_code = 128 + signum
                    daemon.force_stop()
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            try:
                await daemon.run()
            except StartupError as exc:
                print(f"trinfer: startup failed: {exc}", file=sys.stderr)
                exit_code = EXIT_STARTUP
            nursery.cancel_scope.cancel()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

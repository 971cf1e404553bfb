"""A models folder served by a real daemon process with the real SmolLM2 GGUF under three names (links):
each answers by its id, ``max_loaded_models = 1`` swaps them, memory comes back on every unload (VmRSS of the
process), a model in use is not unloaded, ``keep_alive_s`` (a short real timer) unloads the idle one, and broken
files next to them are reported without stopping the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from tests.daemon_harness import DaemonProcess, daemon_process, openai_client, wait_until

pytestmark = pytest.mark.llama

NAMES = ("alpha", "beta", "gamma")
MB = 1024 * 1024
#: How much the process may grow per swap without a model's memory having been kept (the model file alone,
#: mapped, is ~94 MiB; its 512-cell KV cache and buffers another ~20 MiB).
GROWTH_TOLERANCE = 40 * MB


@pytest.fixture
def models_dir(chat_model_path: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in NAMES:
        (folder / f"{name}.gguf").symlink_to(chat_model_path)
    (folder / "broken.gguf").write_bytes(b"this is not a GGUF file\n" * 64)
    (folder / "truncated.gguf").write_bytes(chat_model_path.read_bytes()[: 4 * MB])
    (folder / "notes.txt").write_text("not a model")
    return folder


def write_config(tmp_path: Path, *, keep_alive_s: float = 0) -> Path:
    path = tmp_path / "trinfer.toml"
    path.write_text(
        "backends = []\n"
        "[server]\nmax_loaded_models = 1\n"
        f"[llamacpp_defaults]\nn_ctx = 512\nparallel = 1\nkeep_alive_s = {keep_alive_s}\n"
    )
    return path


def rss(proc: DaemonProcess) -> int:
    """The daemon process's resident set size in bytes (``VmRSS`` of /proc/<pid>/status)."""
    for line in Path(f"/proc/{proc.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


async def admin(proc: DaemonProcess, path: str) -> httpx.Response:
    assert proc.admin_url is not None
    async with httpx.AsyncClient(base_url=proc.admin_url) as client:
        return await client.get(path)


def states(status: dict[str, Any]) -> dict[str, str]:
    return {b["name"]: b["details"]["state"] for b in status["backends"]}


async def test_three_names_one_loaded_at_a_time_and_memory_comes_back(models_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, keep_alive_s=3)
    with trio.fail_after(120):
        async with daemon_process("serve", "--config", str(config), "--models-dir", str(models_dir)) as proc:
            status = (await admin(proc, "/admin/status")).json()
            assert states(status) == dict.fromkeys([*NAMES, "truncated"], "unloaded")  # ready with nothing loaded
            problems = {p["file"]: p["error"] for p in status["models"]["folder"]["problems"]}
            assert problems == {"broken.gguf": "not a GGUF file (no GGUF magic at its start)"}
            assert "broken.gguf is not served" in proc.stderr_text()
            idle_rss = rss(proc)
            client = openai_client(proc.base_url)
            async with client:
                assert sorted(m.id for m in (await client.models.list()).data) == [*NAMES, "truncated"]
                # Its header reads, its tensors are cut short: the load fails, says why, and nothing else stops.
                with pytest.raises(openai.InternalServerError) as caught:
                    await client.chat.completions.create(
                        model="truncated", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
                    )
                assert caught.value.status_code == 503 and "failed to load" in caught.value.message
                failed = (await admin(proc, "/admin/status")).json()
                truncated = next(b for b in failed["backends"] if b["name"] == "truncated")["details"]
                assert truncated["state"] == "unloaded" and truncated["load_failures"] == 1
                assert truncated["load_error"]
                sizes: list[int] = []
                for model in (*NAMES, *NAMES):
                    reply = await client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4
                    )
                    assert reply.model == model and reply.choices[0].message.content
                    now = states((await admin(proc, "/admin/status")).json())
                    assert [name for name, state in now.items() if state != "unloaded"] == [model]
                    sizes.append(rss(proc))
                status = (await admin(proc, "/admin/status")).json()
                assert status["models"]["loaded"] == 1
                # keep_alive_s (3 s, a real timer: llama.cpp frees the model) unloads the last one.
                await wait_until(lambda: _unloaded(proc), poll_s=0.2)
                unloaded_rss = rss(proc)
            metrics = (await admin(proc, "/metrics")).text
    print(f"RSS MiB: idle {idle_rss / MB:.0f}, after each request {[round(s / MB) for s in sizes]}, "
          f"after the keep-alive unload {unloaded_rss / MB:.0f}")  # fmt: skip
    assert max(sizes) - sizes[0] < GROWTH_TOLERANCE  # no growth per model: each swap gave the memory back
    assert sizes[-1] - unloaded_rss > 60 * MB  # the unload returned the model's memory
    assert 'trinfer_model_loads_total{backend="alpha",outcome="ok"} 2.0' in metrics
    assert 'trinfer_model_unloads_total{backend="gamma",reason="keep_alive"} 1.0' in metrics
    assert "trinfer_models_loaded 0.0" in metrics


async def _unloaded(proc: DaemonProcess) -> bool:
    status = (await admin(proc, "/admin/status")).json()
    return set(states(status).values()) == {"unloaded"}


async def test_a_model_in_use_is_not_unloaded_and_the_next_one_waits(models_dir: Path, tmp_path: Path) -> None:
    """``max_loaded_models = 1``: three first requests for gamma load it once; then while alpha streams, a
    request for beta waits, and alpha's stream runs to its end."""
    config = write_config(tmp_path)
    order: list[str] = []
    with trio.fail_after(120):
        async with daemon_process("serve", "--config", str(config), "--models-dir", str(models_dir)) as proc:
            client = openai_client(proc.base_url)
            async with client, trio.open_nursery() as nursery:
                async with trio.open_nursery() as first:  # three at once for one unloaded model: one load
                    for _ in range(3):
                        first.start_soon(lambda: client.chat.completions.create(
                            model="gamma", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
                        ))  # fmt: skip
                loads = (await admin(proc, "/admin/status")).json()
                assert next(b for b in loads["backends"] if b["name"] == "gamma")["details"]["loads"] == 1
                stream = await client.chat.completions.create(
                    model="alpha", messages=[{"role": "user", "content": "Tell me a long story."}],
                    max_tokens=48, stream=True, temperature=0,
                )  # fmt: skip
                chunks = [await stream.__anext__()]

                async def beta() -> None:
                    await client.chat.completions.create(
                        model="beta", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
                    )
                    order.append("beta")

                nursery.start_soon(beta)
                async for chunk in stream:
                    chunks.append(chunk)
                order.append("alpha")
            status = (await admin(proc, "/admin/status")).json()
    assert order == ["alpha", "beta"]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert states(status)["beta"] == "ready" and states(status)["alpha"] == "unloaded"


def test_a_load_reports_its_progress_up_to_one(chat_model_path: Path) -> None:
    """What ``load_progress`` on /admin/status is fed from while a model loads: llama.cpp's own progress."""
    from adapters.llamacpp.model import ContextShape, Model

    seen: list[float] = []
    model = Model(chat_model_path, ContextShape(256, 1, 256, 1, 1), seen.append)
    model.close()
    assert seen and seen == sorted(seen) and seen[-1] == 1.0 and 0.0 <= seen[0] < 1.0

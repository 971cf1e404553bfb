"""Several llama.cpp models loading at once never take the process's stdout and stderr away.

llama-cpp-python silences a quiet load by pointing file descriptors 1 and 2 at /dev/null and restoring its
saved copies afterwards; two overlapping loads restore each other's /dev/null copies, and the daemon's log
(the "ready" line, request lines, errors) is gone for good. These tests run real ``trinfer serve`` processes
whose backends all load the real SmolLM2 file at the same moment.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import trio

from adapters.llamacpp.loading import load_llama

from ..daemon_harness import daemon_process, openai_client

pytestmark = pytest.mark.llama

#: Backends loading at once in each start, and how many starts: one overlap is enough to lose the output, more
#: make an overlap in every start all but certain.
BACKENDS = 3
STARTS = 3


def write_config(tmp_path: Path, model_path: Path) -> Path:
    tables = "".join(
        f'[[backends]]\nname = "copy{i}"\nkind = "llamacpp"\nmodels = ["copy{i}"]\n'
        f'model_path = "{model_path}"\nn_ctx = 256\nn_threads = 1\n\n'
        for i in range(BACKENDS)
    )
    path = tmp_path / "trinfer.toml"
    path.write_text(tables)
    return path


@pytest.mark.slow
async def test_overlapping_loads_keep_the_ready_line_and_request_log_on_stderr(
    chat_model_path: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, chat_model_path)
    for start in range(STARTS):
        with trio.fail_after(180):
            async with daemon_process("serve", "--config", str(config), wait_ready=False) as proc:
                await proc.wait_for_line("ready: inference listening on")
                assert proc.inference_url is not None
                async with openai_client(proc.base_url) as client:
                    models = await client.models.list()
                await proc.wait_for_line(r"GET /v1/models 200 ")
                proc.send_signal()
                assert await proc.wait() == 0, f"start {start}:\n{proc.stderr_text()}"
        assert sorted(m.id for m in models.data) == [f"copy{i}" for i in range(BACKENDS)]
        text = proc.stderr_text()
        assert "stopped" in text.splitlines()[-1], f"start {start}: the last lines were lost:\n{text}"
        # llama.cpp's own load chatter goes to the debug log, not straight to stderr.
        assert "llama_model_loader" not in text


def test_a_load_routes_llama_cpps_log_through_logging_and_leaves_stderr_alone(
    chat_model_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    stderr_before = sys.stderr
    with caplog.at_level(logging.DEBUG, logger="trinfer.llamacpp"):
        llama = load_llama(model_path=str(chat_model_path), n_ctx=256, n_threads=1)
    try:
        assert llama.verbose is False  # generations print nothing
    finally:
        llama.close()
    assert sys.stderr is stderr_before
    native = [r for r in caplog.records if r.name == "trinfer.llamacpp.native"]
    assert any("llama_model_loader" in r.getMessage() for r in native)
    assert all("\n" not in r.getMessage() for r in native)
    printed = [r for r in caplog.records if r.name == "trinfer.llamacpp.load"]
    assert any(r.getMessage().startswith("Model metadata:") for r in printed)
    out, err = capfd.readouterr()
    assert "llama_model_loader" not in out + err
    assert "Model metadata" not in out + err

"""``trinfer``/``python -m proxy`` as a real process: help, exit codes, signals (real SIGINT/SIGTERM)."""

from __future__ import annotations

import importlib.metadata
import signal
import socket
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from proxy.cli import build_parser
from proxy.config import ENV_VARIABLES, ServerConfig
from tests.daemon_harness import daemon_process, openai_client, process_env, wait_until

TRINFER = Path(sys.executable).parent / "trinfer"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=process_env(env),
        check=False,
    )


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "trinfer.toml"
    path.write_text(text)
    return str(path)


def test_help_documents_every_option_and_variable() -> None:
    top = subprocess.run([str(TRINFER), "--help"], capture_output=True, text=True, timeout=60, check=True)
    assert "serve" in top.stdout
    serve = subprocess.run(
        [str(TRINFER), "serve", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    serve_parser = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    options = [o for action in serve_parser._actions for o in action.option_strings]
    assert "--backend" in options and "--model" in options
    for option in options:
        assert option in serve.stdout
    for variable in ENV_VARIABLES:
        assert variable in serve.stdout
    for key in fields(ServerConfig):
        assert key.name in serve.stdout


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[server]\nport = "eighty"\n[[backends]]\nkind = "mock"\nmodels = ["m"]\n', "server.port"),
        ('[server]\ncolour = "blue"\n[[backends]]\nkind = "mock"\nmodels = ["m"]\n', "server.colour"),
        ('[[backends]]\nkind = "mock"\nmodles = ["m"]\n', "backends[0].modles: did you mean 'models'?"),
        ('[[backends]]\nkind = "gpt"\nmodels = ["m"]\n', "backends[0].kind"),
        ('[[backends]]\nkind = "mock"\nmodels = ["m"]\nreply = 3\n', "reply"),
        ("[[backends\n", "not valid TOML"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, toml: str, message: str) -> None:
    result = run_cli("serve", "--config", write_config(tmp_path, toml))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


@pytest.mark.parametrize(
    ("args", "message", "help_hint"),
    [
        (("serve", "--port", "abc"), "argument --port: invalid int value: 'abc'", "trinfer serve --help"),
        (("serve", "--backend", "gpt"), "argument --backend: invalid choice: 'gpt'", "trinfer serve --help"),
        (("serve", "--colour"), "unrecognized arguments: --colour", "trinfer --help"),
        (("bogus",), "argument COMMAND: invalid choice: 'bogus'", "trinfer --help"),
        ((), "the following arguments are required: COMMAND", "trinfer --help"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args: tuple[str, ...], message: str, help_hint: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"trinfer: error: {message}")
    assert lines[0].endswith(f"(see `{help_hint}`)")
    assert result.stdout == ""


def test_missing_config_file_and_incomplete_backend_flags_exit_2(tmp_path: Path) -> None:
    assert run_cli("serve", "--config", str(tmp_path / "absent.toml")).returncode == 2
    result = run_cli("serve", "--backend", "llamacpp")
    assert result.returncode == 2
    assert "--model" in result.stderr


def test_boot_failure_exits_1_without_binding_the_inference_listener(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[[backends]]\nkind = "mock"\nmodels = ["m"]\nfail = "boot"\n')
    result = run_cli("serve", "--config", config, "--port", "0", "--admin-port", "0")
    assert result.returncode == 1
    assert "failed to boot" in result.stderr.strip().splitlines()[-1]
    assert "ready: inference listening" not in result.stderr


def test_version_prints_the_installed_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"trinfer {importlib.metadata.version('trinfer')}\n"


async def test_model_id_serves_the_model_under_the_chosen_id() -> None:
    with trio.fail_after(60):
        async with daemon_process("serve", "--backend", "mock", "--model-id", "house-echo") as proc:
            async with openai_client(proc.base_url) as client:
                models = await client.models.list()
                reply = await client.chat.completions.create(
                    model="house-echo", messages=[{"role": "user", "content": "hi there"}]
                )
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    assert [m.id for m in models.data] == ["house-echo"]
    assert reply.choices[0].message.content == "hi there"
    assert "serving house-echo" in proc.stderr_text()


@pytest.mark.parametrize("flag", ["--port", "--admin-port"])
def test_a_port_in_use_is_one_line_and_exit_1(flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--admin-port" if flag == "--port" else "--port"
        result = run_cli("serve", "--backend", "mock", flag, str(port), other, "0")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "ExceptionGroup" not in result.stderr
    failures = [line for line in result.stderr.splitlines() if "cannot listen" in line]
    assert failures == [f"trinfer: startup failed: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert result.stderr.strip().splitlines()[-1] == failures[0]
    assert "ready: inference listening" not in result.stderr


async def test_sigterm_drains_in_flight_stream_then_exits_0(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[server]\nstop_timeout_s = 30\n[[backends]]\nkind = "mock"\nmodels = ["mock-echo"]\n'
        "token_delay_ms = 100\n",
    )
    messages: list[Any] = [{"role": "user", "content": "a b c d e f g h"}]
    with trio.fail_after(60):
        async with daemon_process("serve", "--config", config) as proc:
            async with openai_client(proc.base_url) as client:
                stream = await client.chat.completions.create(model="mock-echo", messages=messages, stream=True)
                first = await stream.__anext__()
                proc.send_signal(signal.SIGTERM)
                await proc.wait_for_line("SIGTERM received")
                rest = [chunk async for chunk in stream]
            assert await proc.wait() == 0
    text = (first.choices[0].delta.content or "") + "".join(c.choices[0].delta.content or "" for c in rest)
    assert text == "a b c d e f g h"
    assert "stopped" in proc.lines[-1]


async def test_second_sigint_stops_at_once(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[server]\nstop_timeout_s = 600\n[[backends]]\nkind = "mock"\nmodels = ["mock-echo"]\n'
        "token_delay_ms = 60000\n",
    )
    with trio.fail_after(60):
        async with daemon_process("serve", "--config", config) as proc:
            assert proc.inference_url is not None
            async with httpx.AsyncClient(base_url=proc.inference_url) as http, trio.open_nursery() as nursery:
                outcome: list[BaseException] = []

                async def hanging_request() -> None:
                    try:
                        await http.post(
                            "/v1/chat/completions",
                            json={"model": "mock-echo", "messages": [{"role": "user", "content": "a b"}]},
                            timeout=120,
                        )
                    except httpx.HTTPError as exc:
                        outcome.append(exc)

                nursery.start_soon(hanging_request)
                async with httpx.AsyncClient(base_url=proc.admin_url or "") as admin:

                    async def in_flight() -> bool:
                        return bool((await admin.get("/admin/status")).json()["inflight"] == 1)

                    await wait_until(in_flight, poll_s=0.01)
                proc.send_signal(signal.SIGINT)
                await proc.wait_for_line("SIGINT received: stopping gracefully")
                proc.send_signal(signal.SIGINT)
                assert await proc.wait() == 128 + signal.SIGINT
    assert outcome and isinstance(outcome[0], httpx.HTTPError)
    assert "stopping at once" in proc.stderr_text()


async def test_a_stream_cut_by_a_second_signal_is_logged_as_cut_not_as_a_plain_200(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[server]\nstop_timeout_s = 600\n[[backends]]\nkind = "mock"\nmodels = ["mock-echo"]\n'
        "token_delay_ms = 500\n",
    )
    messages: list[Any] = [{"role": "user", "content": " ".join(["w"] * 100)}]
    with trio.fail_after(60):
        async with daemon_process("serve", "--config", config) as proc:
            async with openai_client(proc.base_url) as client:
                stream = await client.chat.completions.create(model="mock-echo", messages=messages, stream=True)
                await stream.__anext__()
                proc.send_signal(signal.SIGTERM)
                await proc.wait_for_line("SIGTERM received: stopping gracefully")
                proc.send_signal(signal.SIGTERM)
                with pytest.raises(openai.APIError):
                    async for _ in stream:
                        pass
            assert await proc.wait() == 128 + signal.SIGTERM
    (line,) = [line for line in proc.lines if "POST /v1/chat/completions" in line]
    assert " 200 " in line
    assert line.endswith("(cut by shutdown)")

"""The examples run, as a user would run them, against a real ``trinfer serve --backend mock`` process."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
import trio

from tests.daemon_harness import DaemonProcess, daemon_process, process_env

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"


async def run_example(proc: DaemonProcess, *argv: str, env: dict[str, str]) -> str:
    result = await trio.run_process(
        list(argv), capture_stdout=True, capture_stderr=True, env=process_env(env), check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return str(result.stdout.decode())


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("chat_sync.py", ["Say hello to trinfer in five words.", "[mock-echo] finish_reason=stop"]),
        ("chat_stream.py", ["Tell me a very short story about a trio of ducks.", "completion_tokens=11"]),
        ("chat_async.py", ["A: What is structured concurrency?", "unknown model -> 404 model_not_found"]),
        (
            "responses.py",
            [
                '[model calls get_weather with {"city": ""}]',
                '[get_weather returned {"city": "Paris", "sky": "clear", "celsius": 21}]',
                "Thanks! Summarise that weather in one sentence.",
                "[mock-echo] status=completed output_tokens=7",
            ],
        ),
        (
            "completions.py",
            [
                "[1] 'The three laws of structured concurrency are' -> 'The three laws",
                "sample 1: 'Once '=-0.31 'upon '=-0.31 'a '=-0.12 'time, '=-0.38 'in '=-0.19 'a '=-0.12",
                "streamed: Once upon a time, in a quiet harbour,",
                "[mock-echo] prompt_tokens=15",
            ],
        ),
    ],
)
async def test_sdk_examples(script: str, expected: list[str]) -> None:
    with trio.fail_after(60):
        async with daemon_process("serve", "--backend", "mock") as proc:
            by_env = await run_example(
                proc, sys.executable, str(EXAMPLES / script), env={"OPENAI_BASE_URL": proc.base_url}
            )
            by_argv = await run_example(proc, sys.executable, str(EXAMPLES / script), proc.base_url, env={})
    for output in (by_env, by_argv):
        for line in expected:
            assert line in output


async def test_anthropic_sdk_example() -> None:
    with trio.fail_after(120):  # two runs of a script that imports the anthropic SDK, on a loaded machine
        async with daemon_process("serve", "--backend", "mock") as proc:
            assert proc.inference_url is not None
            script = str(EXAMPLES / "anthropic_sdk.py")
            by_env = await run_example(
                proc,
                sys.executable,
                script,
                env={"ANTHROPIC_BASE_URL": proc.inference_url, "TRINFER_MODEL": "mock-echo"},
            )
            by_argv = await run_example(proc, sys.executable, script, proc.inference_url, "mock-echo", env={})
    for output in (by_env, by_argv):
        lines = output.splitlines()
        assert lines[0] == "Tell me a very short story about a trio of ducks."  # the mock echoes, streamed
        assert lines[1] == "[mock-echo] stop_reason=end_turn output_tokens=11"
        assert lines[2] == 'tool call: get_weather({"city": ""})'
        assert lines[3] == "What is the weather in Paris?"
        assert lines[4] == "[mock-echo] stop_reason=end_turn"
    source = (EXAMPLES / "anthropic_sdk.py").read_text()
    imports = set(re.findall(r"^(?:from|import) (\w+)", source, flags=re.MULTILINE))
    assert imports <= {"__future__", "json", "os", "sys", "typing", "anthropic"}  # runs from a checkout


def runnable_blocks() -> list[str]:
    """The ``sh`` blocks of examples/curl.md (``text`` blocks are for the reader only)."""
    return re.findall(r"```sh\n(.*?)```", (EXAMPLES / "curl.md").read_text(), flags=re.DOTALL)


async def test_curl_walkthrough() -> None:
    blocks = runnable_blocks()
    assert len(blocks) >= 6
    with trio.fail_after(60):
        async with daemon_process("serve", "--backend", "mock") as proc:
            assert proc.inference_url is not None and proc.admin_url is not None
            env = {"TRINFER": proc.inference_url, "TRINFER_ADMIN": proc.admin_url}
            outputs = [
                await run_example(proc, "bash", "-euo", "pipefail", "-c", block, env=env) for block in blocks
            ]
    health, status, models, chat, stream, errors = outputs
    assert '{"status":"ok"}' in health and '{"status":"ready"}' in health
    assert '"state":"ready"' in status
    assert '"id":"mock-echo"' in models
    assert '"content":"hello from curl"' in chat
    assert stream.rstrip().endswith("data: [DONE]")
    assert '"choices":[]' in stream
    assert "HTTP/1.1 404" in errors and "x-request-id: req_" in errors
    assert '"code":"invalid_json"' in errors


def test_examples_do_not_need_the_project_installed() -> None:
    """The SDK examples import only the openai package and their helper, so they work from a checkout."""
    for script in (
        "chat_sync.py",
        "chat_stream.py",
        "chat_async.py",
        "responses.py",
        "completions.py",
        "_connection.py",
    ):
        source = (EXAMPLES / script).read_text()
        imports = set(re.findall(r"^(?:from|import) (\w+)", source, flags=re.MULTILINE))
        assert imports <= {"__future__", "asyncio", "json", "os", "sys", "typing", "openai", "_connection"}, (
            script,
            imports,
        )


def test_the_readmes_first_command_installs_what_the_examples_import() -> None:
    """A new user runs the README's first command, then an example: the openai SDK must be there."""
    first_command = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)[0]
    (extras,) = re.findall(r"pip install -e '\.\[([\w,]+)\]'", first_command)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = list(project["dependencies"])
    for extra in extras.split(","):
        installed += project["optional-dependencies"][extra]
    names = {re.split(r"[<>=!~\[ ]", requirement)[0].lower() for requirement in installed}
    assert {"openai", "trio", "trio-websocket"} <= names
    for script in ("chat_sync.py", "chat_stream.py", "chat_async.py", "_connection.py"):
        assert "pip install openai" in (EXAMPLES / script).read_text(), script

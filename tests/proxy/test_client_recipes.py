"""docs/clients.md stays true: every recipe in it runs, as a user would run it, against a live daemon.

Each recipe is the fenced block after a ``<!-- recipe: NAME -->`` marker. The daemon is a mock serving the
README's model ids (echo replies, 384-dimension embeddings), so the recipes run unchanged but for the port. Python
recipes run with this interpreter (openai, pydantic and langchain-openai are in the ``dev`` extra), the Node
recipe with ``node`` and the openai package that .ci/install puts under the venv (``<venv>/node``), curl with
bash. Every recipe in the page must have its expected output here, and every one here must be in the page.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import trio

from adapters.llamacpp.defaults import DEFAULT_CHAT_MODEL_ID, DEFAULT_EMBED_MODEL_ID
from tests.daemon_harness import mock_config, process_env, running_daemon

PAGE = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
DOC_URL = "http://127.0.0.1:8080"
NODE_MODULES = Path(sys.prefix) / "node" / "node_modules"

_RECIPE = re.compile(r"<!-- recipe: ([a-z-]+) -->\n```(\w+)\n(.*?)```", flags=re.DOTALL)

#: recipe -> lines its output must contain (the mock echoes the last user message, one word per token).
EXPECTED: dict[str, list[str]] = {
    "python-chat": ["Name three colours.", "finish_reason: stop total_tokens: 6", "Count to five.",
                    "streamed completion_tokens: 3"],
    "python-structured": ['parsed: {"title":"","stars":1}'],
    "python-embeddings": ["vectors: 2 dimensions: 384"],
    "node-chat": ["Name three colours.", "streamed: Count to five.", "dimensions: 384"],
    "langchain-chat": ["Name three colours.", "streamed: Count to five."],
    "langchain-embeddings": ["vectors: 2 dimensions: 384"],
    "curl": ['"content":"Name three colours."', "data: [DONE]", '"object":"list"', '"role":"assistant"'],
}  # fmt: skip


def recipes() -> dict[str, tuple[str, str]]:
    """name -> (language, code) for every recipe of the page."""
    found = {name: (language, code) for name, language, code in _RECIPE.findall(PAGE.read_text())}
    assert len(found) == len(_RECIPE.findall(PAGE.read_text())), "two recipes share a name"
    return found


def test_every_recipe_in_the_page_is_tested_and_names_the_readme_models() -> None:
    found = recipes()
    assert set(found) == set(EXPECTED)
    for _language, code in found.values():
        assert DOC_URL in code
        assert DEFAULT_CHAT_MODEL_ID in code or DEFAULT_EMBED_MODEL_ID in code


def command(name: str, language: str, code: str, workdir: Path) -> list[str]:
    if language == "python":
        return [sys.executable, "-c", code]
    if language == "sh":
        return ["bash", "-euo", "pipefail", "-c", code]
    assert language == "javascript"
    assert NODE_MODULES.is_dir(), f"the openai Node package is missing under {NODE_MODULES}: run .ci/install"
    (workdir / "node_modules").symlink_to(NODE_MODULES)
    script = workdir / f"{name}.mjs"
    script.write_text(code)
    return ["node", str(script)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_the_recipe_runs_against_a_live_server(name: str, tmp_path: Path) -> None:
    language, code = recipes()[name]
    config = mock_config(models=(DEFAULT_CHAT_MODEL_ID, DEFAULT_EMBED_MODEL_ID), embed_dim=384)
    with trio.fail_after(120):
        async with running_daemon(config) as d:
            live = code.replace(DOC_URL, d.inference_url)
            env = process_env({"OPENAI_API_KEY": "unused", "NO_PROXY": "127.0.0.1"})
            result = await trio.run_process(
                command(name, language, live, tmp_path),
                capture_stdout=True,
                capture_stderr=True,
                env=env,
                cwd=tmp_path,
                check=False,
            )
            assert d.admission().active == 0
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    for line in EXPECTED[name]:
        assert line in output, (line, output)

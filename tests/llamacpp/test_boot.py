"""Loading: chat templates from the GGUF (no silent fallback), failures that say why, and status while loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from adapters.backend import BackendConfigError
from adapters.errors import InvalidRequest, NotReady, Unavailable
from adapters.llamacpp import LlamaCppBackend
from adapters.types import Message, Resolved, Role, SamplingParams

from ..adapters.conformance import generate_text, run_to_end
from .conftest import booted

pytestmark = pytest.mark.llama

HI = Resolved("smollm2", (Message(Role.USER, "Say hi."),), SamplingParams(temperature=0.0, max_tokens=8))


async def test_status_reports_loading_then_ready_with_the_model_and_its_template(chat_model_path: Path) -> None:
    backend = LlamaCppBackend.from_options({"model_path": str(chat_model_path)})
    assert backend.status()["state"] == "configured"
    seen: list[object] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(backend.boot)
            # trio may run this task again before boot() has started: wait for the first change of state,
            # which boot() makes before it hands the load to a worker thread.
            while backend.status()["state"] == "configured":
                await trio.lowlevel.checkpoint()
            seen.append(backend.status()["state"])
    try:
        assert seen == ["loading"]
        assert backend.ready()
        status = backend.status()
        assert status["state"] == "ready"
        assert status["model_path"] == str(chat_model_path)
        assert status["chat_template"] == "gguf:tokenizer.chat_template"
        assert status["n_ctx"] == 2048
        caps = backend.capabilities()
        assert (caps.v2, caps.tools, caps.json_schema, caps.embed) == (True, True, True, False)
    finally:
        await backend.stop(10)


async def test_a_missing_model_file_fails_the_boot_and_says_which(tmp_path: Path, chat_model_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    backend = LlamaCppBackend.from_options({"model_path": str(missing)})
    with trio.fail_after(60), pytest.raises(Unavailable) as raised:
        await backend.boot()
    assert str(missing) in raised.value.message
    assert backend.status()["state"].startswith("failed: ")
    assert str(missing) in backend.status()["state"]
    assert not backend.ready()
    with pytest.raises(NotReady):
        await run_to_end(lambda send: backend.generate(HI, send))


async def test_a_file_that_is_not_a_model_fails_the_boot(tmp_path: Path, chat_model_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    backend = LlamaCppBackend.from_options({"model_path": str(junk)})
    with trio.fail_after(60), pytest.raises(Unavailable, match="could not load"):
        await backend.boot()
    assert backend.status()["state"].startswith("failed: ")


async def test_a_model_without_a_chat_template_fails_to_load_with_a_clear_message(
    template_free_model: Path,
) -> None:
    backend = LlamaCppBackend.from_options({"model_path": str(template_free_model)})
    with trio.fail_after(60), pytest.raises(BackendConfigError) as raised:
        await backend.boot()
    message = str(raised.value)
    assert "no chat template" in message and "chat_format" in message and "chatml" in message
    assert backend.status()["state"].startswith("failed: ")


async def test_naming_a_chat_format_loads_a_model_without_a_template(template_free_model: Path) -> None:
    async for backend in booted(template_free_model, {"chat_format": "chatml"}):
        assert backend.status()["chat_template"] == "chat_format:chatml"
        with trio.fail_after(60):
            assert await generate_text(backend, HI)


async def test_an_unknown_chat_format_fails_the_boot(chat_model_path: Path) -> None:
    backend = LlamaCppBackend.from_options({"model_path": str(chat_model_path), "chat_format": "no-such-format"})
    with trio.fail_after(60), pytest.raises(BackendConfigError, match="no-such-format"):
        await backend.boot()


async def test_a_template_that_rejects_the_messages_is_a_400(strict_template_model: Path) -> None:
    """The GGUF's own template raises for two user turns in a row: a 400 on ``messages``, not a 500."""
    async for backend in booted(strict_template_model, {}):
        assert backend.status()["chat_template"] == "gguf:tokenizer.chat_template"
        assert await generate_text(backend, HI)
        twice = Resolved("m", (Message(Role.USER, "a"), Message(Role.USER, "b")), SamplingParams(max_tokens=2))
        with trio.fail_after(60), pytest.raises(InvalidRequest) as raised:
            await run_to_end(lambda send, backend=backend, twice=twice: backend.generate(twice, send))
        assert raised.value.param == "messages"
        assert "alternate" in raised.value.message

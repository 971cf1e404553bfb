"""The ``kind = "llamacpp"`` config table, validated into a frozen value before anything is loaded.

Every key is checked once, here (through the shared `adapters.options.OptionReader`), and a bad one becomes a
`BackendConfigError` that names it, so a typo in the config stops the daemon at start-up with one clear line
instead of surfacing as a strange model later.

Why the thread default is what it is: decoding is memory-bound and llama.cpp spins its worker threads, so with
as many llama threads as cores the model starves the event loop (and the client, on the same machine). On the
2-core machine this was measured on, llama-cpp-python's own server swung between 48 and 148 tokens/s at
``n_threads = 2`` but held 137 tokens/s at 1, and in-process decoding at 1 thread is ~145 tokens/s. So the
default leaves half the logical CPUs (roughly: the hyperthread siblings, or on 2 cores the second core) to the
event loop and clients: ``max(1, min(8, cpu_count // 2))``. Set ``n_threads`` to override it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..options import OptionReader


def default_threads(cpu_count: int | None = None) -> int:
    """The default ``n_threads``: half the logical CPUs, at least 1 and at most 8 (see the module docstring)."""
    cpus = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, min(8, cpus // 2))


@dataclass(frozen=True, slots=True)
class GrammarLimits:
    """Bounds on grammars built from client JSON schemas; a schema outside them is rejected with 400.

    The JSON-schema-to-GBNF converter expands repetition counts (``maxLength: 3000`` becomes 3000 nested
    optional groups) and llama.cpp's grammar engine slows down, or refuses, as grammars grow: these limits keep
    a client's schema from costing more than a small, predictable amount of memory and time per token.
    """

    max_schema_bytes: int = 32_768
    max_schema_depth: int = 24
    max_repetition: int = 256
    max_grammar_bytes: int = 65_536


@dataclass(frozen=True, slots=True)
class LlamaCppOptions:
    """The validated options of one llamacpp backend."""

    model_path: Path
    chat_format: str | None = None
    n_ctx: int = 2048
    n_threads: int = 1
    n_threads_batch: int = 1
    n_batch: int = 512
    seed: int | None = None
    embedding: bool = False
    grammar_limits: GrammarLimits = GrammarLimits()
    #: Sequences decoded together (continuous batching), each with ``n_ctx`` KV cells of its own; the daemon's
    #: admission ``active`` defaults to it.
    parallel: int = 4


OPTION_KEYS = (
    "model_path",
    "chat_format",
    "n_ctx",
    "n_threads",
    "n_threads_batch",
    "n_batch",
    "seed",
    "embedding",
    "parallel",
    "max_schema_bytes",
    "max_schema_depth",
    "max_repetition",
    "max_grammar_bytes",
)


def parse_options(options: Mapping[str, Any]) -> LlamaCppOptions:
    """Validate a llamacpp table's kind-specific keys. Raises `BackendConfigError` naming the bad key.

    Checks types and ranges only: whether ``model_path`` exists and loads is found out in ``boot`` (the Backend
    contract: no I/O here), which fails with a message naming the path.
    """
    read = OptionReader("llamacpp", options, OPTION_KEYS)
    model_path = Path(read.check_string("model_path", read.required("model_path", "the path of a .gguf file")))
    n_threads = read.integer("n_threads", default_threads(), minimum=1, maximum=512)
    defaults = GrammarLimits()
    limits = GrammarLimits(
        max_schema_bytes=read.integer("max_schema_bytes", defaults.max_schema_bytes, minimum=64),
        max_schema_depth=read.integer("max_schema_depth", defaults.max_schema_depth, minimum=1, maximum=64),
        max_repetition=read.integer("max_repetition", defaults.max_repetition, minimum=1, maximum=1024),
        max_grammar_bytes=read.integer("max_grammar_bytes", defaults.max_grammar_bytes, minimum=256),
    )
    return LlamaCppOptions(
        model_path=model_path.expanduser(),
        chat_format=read.optional_string("chat_format"),
        n_ctx=read.integer("n_ctx", 2048, minimum=16, maximum=1 << 20),
        parallel=read.integer("parallel", 4, minimum=1, maximum=256),
        n_threads=n_threads,
        n_threads_batch=read.integer("n_threads_batch", n_threads, minimum=1, maximum=512),
        n_batch=read.integer("n_batch", 512, minimum=1, maximum=1 << 16),
        seed=read.optional_integer("seed", minimum=0, maximum=2**32 - 1),
        embedding=read.boolean("embedding", False),
        grammar_limits=limits,
    )

"""What a GGUF file is, read from its metadata without loading it: a chat model or an embedding model.

A models folder (``server.models_dir``) serves every ``.gguf`` in it, and the daemon must know before anything
is loaded which requests a file can answer: an embedding model gets ``/v1/embeddings``, a chat model the chat
routes. The metadata says so: an encoder architecture (BERT and its kin), or a ``<arch>.pooling_type`` key
(what llama.cpp reads to pool token vectors into one), marks an embedding model; anything else is a chat model.
Reading the metadata with the ``gguf`` package maps the file and parses its header only (milliseconds), so a
file that is not a GGUF at all is found here, at start-up, and reported instead of failing a load later.
"""

from __future__ import annotations

import enum
from pathlib import Path

#: Architectures that only embed (no causal language-model head).
EMBEDDING_ARCHITECTURES = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "neo-bert", "modern-bert"}
    | {"t5encoder"}
)


class GgufKind(enum.StrEnum):
    CHAT = "chat"
    EMBEDDING = "embedding"


class UnreadableGguf(ValueError):
    """The file is not a GGUF the daemon can serve; the message says why in one line."""


def read_kind(path: Path) -> GgufKind:
    """Chat or embedding model, from ``path``'s metadata; `UnreadableGguf` when it cannot be read."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(path, "r")
        field = reader.fields.get("general.architecture")
        if field is None:
            raise UnreadableGguf("it has no general.architecture metadata")
        architecture = str(field.contents())
    except UnreadableGguf:
        raise
    except Exception as exc:  # gguf raises ValueError, struct.error, IndexError... on anything not a GGUF
        text = " ".join(str(exc).split()) or exc.__class__.__name__
        raise UnreadableGguf(f"not a readable GGUF file ({text})") from exc
    if architecture in EMBEDDING_ARCHITECTURES or f"{architecture}.pooling_type" in reader.fields:
        return GgufKind.EMBEDDING
    return GgufKind.CHAT

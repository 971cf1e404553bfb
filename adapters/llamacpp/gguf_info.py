"""What a GGUF file is, read from its metadata without loading it: a chat model or an embedding model.

A models folder (``server.models_dir``) serves every ``.gguf`` in it, and the daemon must know before anything
is loaded which requests a file can answer: an embedding model gets ``/v1/embeddings``, a chat model the chat
routes. The metadata says so: an encoder architecture (BERT and its kin), or a ``<arch>.pooling_type`` key
(what llama.cpp reads to pool token vectors into one), marks an embedding model; anything else is a chat model.
Only the header's key-value section is read,
by the small reader here (the ``gguf`` package's reader parses every tensor and token too: seconds per file), so
a folder of many models is classified in milliseconds, and a file that is not a GGUF at all is found at start-up
and reported instead of failing a load later. (A file whose header is intact but whose tensors are not, a
truncated download, is found when it is loaded: its load fails and says why.)
"""

from __future__ import annotations

import enum
import mmap
import struct
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


MAGIC = b"GGUF"
#: GGUF value types with a fixed size, by type id -> size in bytes (8 = string, 9 = array are read apart).
_FIXED_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
_LENGTH = struct.Struct("<Q")


def read_kind(path: Path) -> GgufKind:
    """Chat or embedding model, from ``path``'s metadata; `UnreadableGguf` when it cannot be read."""
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            metadata = _Header(data).metadata()
    except (OSError, ValueError) as exc:  # ValueError: mmap of an empty file
        if isinstance(exc, UnreadableGguf):
            raise
        raise UnreadableGguf(f"cannot read it ({getattr(exc, 'strerror', None) or exc})") from exc
    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str):
        raise UnreadableGguf("it has no general.architecture metadata")
    if architecture in EMBEDDING_ARCHITECTURES or f"{architecture}.pooling_type" in metadata:
        return GgufKind.EMBEDDING
    return GgufKind.CHAT


class _Header:
    """A cursor over the file's bytes that reads the header's key-value section."""

    def __init__(self, data: mmap.mmap) -> None:
        self._data = data
        self._at = 0

    def metadata(self) -> dict[str, object]:
        """The header's keys; string values decoded, every other value skipped (``None``)."""
        if self._data[:4] != MAGIC:
            raise UnreadableGguf("not a GGUF file (no GGUF magic at its start)")
        self._at = 4
        (version,) = self._unpack("<I")
        if version < 2:
            raise UnreadableGguf(f"GGUF version {version} is too old (llama.cpp reads version 2 and later)")
        _tensors, count = self._unpack("<QQ")
        metadata: dict[str, object] = {}
        for _ in range(count):
            key = self._string()
            (kind,) = self._unpack("<I")
            if kind == _STRING:
                metadata[key] = self._string()
            else:
                self._skip(kind)
                metadata[key] = None
        return metadata

    def _unpack(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        self._advance(size)
        return struct.unpack_from(fmt, self._data, self._at - size)

    def _advance(self, size: int) -> None:
        if self._at + size > len(self._data):
            raise UnreadableGguf("not a readable GGUF file (its header ends early)")
        self._at += size

    def _string(self) -> str:
        (length,) = self._unpack("<Q")
        self._advance(length)
        return self._data[self._at - length : self._at].decode("utf-8", "replace")

    def _skip(self, kind: int) -> None:
        if kind in _FIXED_SIZES:
            self._advance(_FIXED_SIZES[kind])
            return
        if kind != _ARRAY:
            raise UnreadableGguf(f"not a readable GGUF file (unknown metadata type {kind})")
        item, count = self._unpack("<IQ")
        if item in _FIXED_SIZES:
            self._advance(_FIXED_SIZES[item] * count)
            return
        if item != _STRING:
            for _ in range(count):
                self._skip(item)
            return
        data, at, length_at = self._data, self._at, _LENGTH.unpack_from  # a vocabulary: tens of thousands
        try:
            for _ in range(count):
                at += 8 + length_at(data, at)[0]
        except struct.error:
            raise UnreadableGguf("not a readable GGUF file (its header ends early)") from None
        self._at = at
        self._advance(0)

"""Naming an unknown config key, with the known key it was probably meant to be.

A typo such as ``modles`` would otherwise surface as a confusing error about the key it shadows ("models must
be a list of strings, got None"); the config checks every table's keys against the known ones first and says
``unknown key backends[0].modles: did you mean 'models'?``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: How alike a key must be to a known one (difflib's ratio) to be suggested.
SIMILARITY = 0.6


def closest_key(key: str, known: Iterable[str]) -> str | None:
    """The known key most like ``key``, or None when none is alike enough."""
    matches = difflib.get_close_matches(key, list(known), n=1, cutoff=SIMILARITY)
    return matches[0] if matches else None


def unknown_key_message(where: str, key: str, known: Iterable[str]) -> str:
    """One line: ``unknown key <where>.<key>: did you mean '<closest>'?`` and the known keys.

    An empty ``where`` is the document's top level (``unknown top-level key 'servers'``).
    """
    candidates = sorted(known)
    suggestion = closest_key(key, candidates)
    name = f"key {where}.{key}" if where else f"top-level key {key!r}"
    if suggestion is not None:
        return f"unknown {name}: did you mean {suggestion!r}? (known keys: {', '.join(candidates)})"
    return f"unknown {name} (known keys: {', '.join(candidates)})"

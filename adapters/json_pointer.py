"""A ``$ref`` inside one JSON schema document, resolved: the JSON pointer both schema walkers follow.

A local reference is ``#`` (the whole document) or ``#/`` and a JSON pointer (RFC 6901): tokens separated by
``/``, each percent-decoded first (the pointer is a URI fragment), then ``~1`` read as ``/`` and ``~0`` as
``~``; a token steps into an object by key or into an array by a decimal index. Nothing outside the document is
ever fetched. The walkers (`compat.schema`, which refuses a bad reference with a 400 naming it, and
`adapters.schema_example`, which re-checks it before following it) word the failure each its own way, so this
module only says which of the two failures it was. It lives here, below compat/, because compat may import
adapters and not the reverse; it is pure (no I/O) like compat itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote


class UnresolvedRef(ValueError):
    """The reference does not resolve: ``local`` is False for one outside the document (not ``#`` or ``#/...``),
    True for a local one that points at nothing."""

    def __init__(self, ref: object, *, local: bool) -> None:
        super().__init__(ref)
        self.local = local


def resolve_local_ref(root: object, ref: object) -> object:
    """The value ``ref`` points at inside the document ``root``; raises `UnresolvedRef` when there is none."""
    if ref == "#":
        return root
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise UnresolvedRef(ref, local=False)
    target = root
    for token in ref[2:].split("/"):
        step = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and step in target:
            target = target[step]
        elif isinstance(target, list) and step.isdigit() and int(step) < len(target):
            target = target[int(step)]
        else:
            raise UnresolvedRef(ref, local=True)
    return target

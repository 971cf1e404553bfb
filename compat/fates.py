"""The fate of every top-level field of a request body, as data, applied once per request.

Each dialect's parser (OpenAI chat, Responses and legacy completions; Anthropic Messages) lists its documented
fields in three sets, and docs/api-compat.md has one row per field saying which set it is in: *mapped* fields
the parser reads itself; *unsupported* fields, refused with `UnsupportedParameter` whenever they are set (not
``null``), because ignoring them would silently change what the client gets; *ignored* fields, type-checked
and dropped. `FieldFates.check` does the part every dialect shares: the body is an object, no unsupported
field is set, every ignored field has its JSON kind. Unknown top-level keys pass without a check (the SDKs
send ``extra_body`` entries as top-level keys). `FieldFates.rows` is the same table as the docs show it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ._fields import JSONDict, as_list, opt_bool, opt_object, opt_str
from .errors import RequestValidationError, UnsupportedParameter

#: How an ignored field of each JSON kind is checked.
READERS: dict[str, Callable[[JSONDict, str], object]] = {
    "string": opt_str,
    "boolean": opt_bool,
    "object": opt_object,
    "array": lambda body, name: None if body.get(name) is None else as_list(body[name], name),
}


@dataclass(frozen=True, slots=True)
class FieldFates:
    """A dialect's fields: ``mapped`` (read by its parser), ``unsupported`` (field -> the message a client is
    told), ``ignored`` (field -> its JSON kind: ``string``, ``boolean``, ``object`` or ``array``)."""

    mapped: frozenset[str]
    unsupported: Mapping[str, str]
    ignored: Mapping[str, str]

    def __post_init__(self) -> None:
        for name, kind in self.ignored.items():
            if kind not in READERS:
                raise ValueError(f"ignored field {name!r}: unknown JSON kind {kind!r}")

    def check(self, body: object) -> JSONDict:
        """``body`` as an object, once no unsupported field is set and every ignored one has its kind."""
        if not isinstance(body, dict):
            raise RequestValidationError("The request body must be a JSON object.", code="invalid_type")
        for name, message in self.unsupported.items():
            if body.get(name) is not None:
                raise UnsupportedParameter(message, param=name)
        for name, kind in self.ignored.items():
            READERS[kind](body, name)
        return body

    def rows(self) -> dict[str, str]:
        """Every field's fate (``mapped``, ``unsupported`` or ``ignored``), as docs/api-compat.md lists it."""
        return {
            **dict.fromkeys(self.mapped, "mapped"),
            **dict.fromkeys(self.unsupported, "unsupported"),
            **dict.fromkeys(self.ignored, "ignored"),
        }

    @property
    def handled(self) -> frozenset[str]:
        """Every field with a fate."""
        return self.mapped | frozenset(self.unsupported) | frozenset(self.ignored)

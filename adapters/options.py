"""Reading a backend's kind-specific config table: one reader for every backend, one wording for its errors.

A backend's ``from_options`` builds an `OptionReader` over its table (which refuses unknown keys at once) and
asks it for each key with its type, default and range; a bad value raises `BackendConfigError` worded the
same way for every kind, naming the key and the value found::

    unknown mock option 'colour' (expected one of boot_delay_ms, embed_dim, ...)
    llamacpp option 'model_path' is required (the path of a .gguf file)
    anthropic option 'timeout_s' must be a positive number of seconds, got -1

The daemon prefixes the backend's place in the config (``backends[0] (m1): ...``). Checks that belong to
one kind only (a model map, a URL, a thinking budget) stay in that backend and word their errors through
`OptionReader.invalid`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .backend import BackendConfigError

_MISSING: Any = object()


class OptionReader:
    """Typed, range-checked reads of one backend kind's options; every error names the kind and the key."""

    def __init__(self, kind: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
        self.kind = kind
        self._options = options
        self._known = tuple(sorted(known))
        unknown = sorted(set(options) - set(self._known))
        if unknown:
            raise BackendConfigError(
                f"unknown {kind} option {unknown[0]!r} (expected one of {', '.join(self._known)})"
            )

    def invalid(self, key: str, expected: str, value: Any) -> BackendConfigError:
        """The error for a bad value: ``<kind> option '<key>' must be <expected>, got <value>``."""
        return BackendConfigError(f"{self.kind} option {key!r} must be {expected}, got {value!r}")

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value of ``key`` (``default`` when absent), for checks only one backend makes."""
        return self._options.get(key, default)

    def required(self, key: str, what: str) -> Any:
        """The raw value of a key that must be given; ``what`` says what it is, for the error."""
        if key not in self._options:
            raise BackendConfigError(f"{self.kind} option {key!r} is required ({what})")
        return self._options[key]

    def integer(self, key: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        """An integer in ``[minimum, maximum]`` (booleans are not integers here)."""
        return self.check_integer(key, self._options.get(key, default), minimum=minimum, maximum=maximum)

    def optional_integer(self, key: str, *, minimum: int, maximum: int | None = None) -> int | None:
        """Like `integer`, but absent (or ``None``) stays ``None``."""
        value = self._options.get(key)
        return None if value is None else self.check_integer(key, value, minimum=minimum, maximum=maximum)

    def check_integer(self, key: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.invalid(key, "an integer", value)
        if value < minimum or (maximum is not None and value > maximum):
            upper = "" if maximum is None else f" and <= {maximum}"
            raise self.invalid(key, f"an integer >= {minimum}{upper}", value)
        return value

    def number(self, key: str, default: float, *, positive: bool = False, unit: str = "") -> float:
        """A finite number, ``>= 0`` (``> 0`` if ``positive``); ``unit`` names what it counts, for the error."""
        value = self._options.get(key, default)
        wanted = ("a positive" if positive else "a non-negative") + " number" + (f" of {unit}" if unit else "")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
            raise self.invalid(key, wanted, value)
        if positive and not value > 0:
            raise self.invalid(key, wanted, value)
        return float(value)

    def string(self, key: str, default: str) -> str:
        """A non-empty string."""
        return self.check_string(key, self._options.get(key, default))

    def optional_string(self, key: str) -> str | None:
        """Like `string`, but absent (or ``None``) stays ``None``."""
        value = self._options.get(key)
        return None if value is None else self.check_string(key, value)

    def check_string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.invalid(key, "a non-empty string", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._options.get(key, default)
        if not isinstance(value, bool):
            raise self.invalid(key, "true or false", value)
        return value

    def choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        """One of ``choices``."""
        allowed = tuple(choices)
        value = self._options.get(key, default)
        if value not in allowed:
            raise self.invalid(key, f"one of {', '.join(allowed)}", value)
        return str(value)

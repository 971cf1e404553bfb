"""The one boundary where llama-cpp-python's (and its Jinja2 templates') exceptions become engine errors.

llama-cpp-python raises plain ``ValueError``/``RuntimeError`` for very different situations (a file that is not
a model, a chat template refusing a message order, a decode that ran out of memory), so the same class means
different things depending on what was being done. The table is therefore keyed by *phase* first, then by
exception class, most specific first; the first matching row wins. Callers write::

    except Exception as exc:
        raise translate(exc, Phase.DECODE) from exc

and nothing from ``llama_cpp`` (or ``jinja2``) ever leaves ``adapters/``. Errors that are already engine
errors pass through unchanged.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable

from ..errors import Internal, InvalidRequest, TrinferError, Unavailable


class Phase(enum.StrEnum):
    """What the backend was doing when the exception was raised."""

    LOAD = "load"  # constructing the Llama (boot)
    TEMPLATE = "template"  # rendering the chat template over the request's messages
    GRAMMAR = "grammar"  # converting a client JSON schema to GBNF
    TOKENIZE = "tokenize"  # tokenizing the prompt
    DECODE = "decode"  # evaluating the prompt and sampling tokens


Factory = Callable[[BaseException, str | None], TrinferError]


def _unavailable_load(exc: BaseException, param: str | None) -> TrinferError:
    return Unavailable(f"llama.cpp could not load the model: {exc}", code="backend_unavailable")


def _missing_file(exc: BaseException, param: str | None) -> TrinferError:
    return Unavailable(f"model file not found: {exc}", code="backend_unavailable")


def _out_of_memory(exc: BaseException, param: str | None) -> TrinferError:
    return Unavailable("llama.cpp ran out of memory", code="backend_unavailable", status=503)


def _template_rejected(exc: BaseException, param: str | None) -> TrinferError:
    return InvalidRequest(f"the model's chat template rejected these messages: {exc}", param=param or "messages")


def _template_broken(exc: BaseException, param: str | None) -> TrinferError:
    return Internal(f"the model's chat template failed: {type(exc).__name__}: {exc}")


def _schema_rejected(exc: BaseException, param: str | None) -> TrinferError:
    detail = str(exc) or type(exc).__name__
    return InvalidRequest(f"cannot build a grammar from this JSON schema: {detail}", param=param)


def _schema_too_deep(exc: BaseException, param: str | None) -> TrinferError:
    return InvalidRequest("this JSON schema is nested too deeply to build a grammar from", param=param)


def _tokenize_failed(exc: BaseException, param: str | None) -> TrinferError:
    return Unavailable(f"llama.cpp failed to tokenize the prompt: {exc}", code="backend_unavailable")


def _decode_failed(exc: BaseException, param: str | None) -> TrinferError:
    return Unavailable(f"llama.cpp failed while generating: {exc}", code="backend_unavailable")


def _bug(exc: BaseException, param: str | None) -> TrinferError:
    return Internal(f"unexpected {type(exc).__name__} in the llamacpp backend: {exc}")


@functools.cache
def _table() -> tuple[tuple[Phase, tuple[type[BaseException], ...], Factory], ...]:
    """The translation rows (built on first use: ``jinja2`` comes with llama-cpp-python, not with trinfer)."""
    try:
        from jinja2 import TemplateError
    except ImportError:  # pragma: no cover - jinja2 is a dependency of llama-cpp-python
        template_errors: tuple[type[BaseException], ...] = (ValueError,)
    else:
        template_errors = (TemplateError, ValueError)
    return (
        (Phase.LOAD, (FileNotFoundError,), _missing_file),
        (Phase.LOAD, (MemoryError,), _out_of_memory),
        (Phase.LOAD, (Exception,), _unavailable_load),
        (Phase.TEMPLATE, template_errors, _template_rejected),
        (Phase.TEMPLATE, (Exception,), _template_broken),
        (Phase.GRAMMAR, (RecursionError,), _schema_too_deep),
        # The converter is a pure function of the client's schema: whatever it raises, the schema is at fault
        # (a 400, never a 500 the circuit breaker would count against the model).
        (Phase.GRAMMAR, (Exception,), _schema_rejected),
        (Phase.TOKENIZE, (MemoryError,), _out_of_memory),
        (Phase.TOKENIZE, (RuntimeError, ValueError), _tokenize_failed),
        (Phase.DECODE, (MemoryError,), _out_of_memory),
        (Phase.DECODE, (RuntimeError, ValueError, OSError), _decode_failed),
    )


def translate(exc: BaseException, phase: Phase, *, param: str | None = None) -> TrinferError:
    """The engine error for ``exc`` raised during ``phase``; ``param`` names the request field at fault, if any.

    Engine errors are returned as they are. Anything the table does not cover is a bug (`Internal`).
    """
    if isinstance(exc, TrinferError):
        return exc
    for row_phase, classes, factory in _table():
        if row_phase is phase and isinstance(exc, classes):
            return factory(exc, param)
    return _bug(exc, param)


class UnusableOutput(Internal):
    """The model's output could not be delivered as the request asked (a tool call that does not parse).

    A 500 like any internal error, but not the backend's fault in the circuit breaker's sense: the same model
    serves other requests fine, and one client's odd request must not take the model away from everyone.
    """

    default_code = "model_output_unusable"
    backend_fault = False

"""Message content: a string or an array of content parts, as engine content blocks.

Which part types a message may hold depends on its role (the caller passes them): user messages take ``text``
and ``image_url``; system, developer and tool messages take ``text`` only; assistant messages take ``text`` and
``refusal`` (the refusal text becomes a text block: it is what the assistant said). ``input_audio`` and ``file``
parts are documented OpenAI inputs that trinfer does not implement, so they raise `UnsupportedParameter` in any
role; any other part type a role does not take is an invalid value.

Images must be inline ``data:`` URLs carrying base64 data of one of `IMAGE_MEDIA_TYPES`. trinfer never fetches
a remote URL: that would let any client make the server issue requests to arbitrary hosts.
"""

from __future__ import annotations

import base64
import binascii

from adapters.types import ContentBlock, ImageBlock, TextBlock

from .._fields import (
    as_list,
    as_object,
    as_str,
    field_path,
    invalid_type,
    invalid_value,
    item_path,
    opt_choice,
    required,
)
from ..errors import RequestValidationError, UnsupportedParameter

IMAGE_MEDIA_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp")
IMAGE_DETAILS: tuple[str, ...] = ("auto", "low", "high", "original")

USER_PARTS = frozenset({"text", "image_url"})
TEXT_PARTS = frozenset({"text"})
ASSISTANT_PARTS = frozenset({"text", "refusal"})
#: Part types OpenAI documents for user messages that trinfer does not implement.
UNSUPPORTED_PARTS = frozenset({"input_audio", "file"})


def parse_content(value: object, path: str, allowed: frozenset[str]) -> tuple[ContentBlock, ...]:
    """A message's ``content`` (string or array of parts) as blocks; ``allowed``: the part types of its role."""
    if isinstance(value, str):
        return (TextBlock(value),)
    if not isinstance(value, list):
        raise invalid_type(path, "a string or an array of content parts", value)
    parts = as_list(value, path, non_empty=True)
    return tuple(_parse_part(part, item_path(path, i), allowed) for i, part in enumerate(parts))


def _parse_part(value: object, path: str, allowed: frozenset[str]) -> ContentBlock:
    part = as_object(value, path)
    kind = as_str(required(part, "type", path), field_path(path, "type"))
    if kind not in allowed:
        if kind in UNSUPPORTED_PARTS:
            raise UnsupportedParameter(
                f"Content parts of type '{kind}' are not supported by this server.",
                param=field_path(path, "type"),
            )
        expected = ", ".join(repr(k) for k in sorted(allowed))
        raise invalid_value(field_path(path, "type"), f"expected one of {expected}, but got {kind[:64]!r}.")
    if kind == "image_url":
        return _parse_image(part, path)
    # "text" parts carry ``text``; assistant "refusal" parts carry ``refusal``.
    return TextBlock(as_str(required(part, kind, path), field_path(path, kind)))


def _parse_image(part: dict[str, object], path: str) -> ImageBlock:
    image_path = field_path(path, "image_url")
    image = as_object(required(part, "image_url", path), image_path)
    url = as_str(required(image, "url", image_path), field_path(image_path, "url"))
    detail = opt_choice(image, "detail", IMAGE_DETAILS, image_path)
    media_type, data = decode_data_url(url, image_path)
    return ImageBlock(media_type=media_type, data=data, detail=detail)


def _bad_image(path: str, message: str) -> RequestValidationError:
    return RequestValidationError(message, param=path, code="invalid_image_url")


def decode_data_url(url: str, path: str) -> tuple[str, bytes]:
    """(media type, bytes) of a ``data:<media type>;base64,<data>`` URL; errors name ``path``."""
    if not url[:5].lower() == "data:":
        raise _bad_image(
            path,
            "Invalid image URL: remote URLs are not fetched by this server; "
            "send the image inline as a base64 data: URL (data:image/png;base64,...).",
        )
    header, comma, payload = url[5:].partition(",")
    params = [p.strip().lower() for p in header.split(";")]
    if not comma or "base64" not in params[1:]:
        raise _bad_image(path, "Invalid image data URL: expected the form data:<media type>;base64,<data>.")
    media_type = params[0]
    if media_type not in IMAGE_MEDIA_TYPES:
        allowed = ", ".join(IMAGE_MEDIA_TYPES)
        raise _bad_image(path, f"Invalid image media type {media_type[:64]!r}: expected one of {allowed}.")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad_image(path, "Invalid image data URL: the data is not valid base64.") from exc
    if not data:
        raise _bad_image(path, "Invalid image data URL: the image is empty.")
    return media_type, data

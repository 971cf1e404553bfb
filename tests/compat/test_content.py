"""Inline images: ``data:`` URLs decode to the exact bytes and media type; anything else is a 400 that says why."""

from __future__ import annotations

import base64

import pytest

from adapters.types import ImageBlock, Role
from compat.errors import RequestValidationError
from compat.openai.chat_request import parse_chat_request
from compat.openai.content import IMAGE_MEDIA_TYPES

DATA = bytes(range(256))
B64 = base64.b64encode(DATA).decode()


def image_body(url: str) -> dict[str, object]:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
    }


@pytest.mark.parametrize("media_type", IMAGE_MEDIA_TYPES)
def test_each_allowed_media_type_decodes_to_its_bytes(media_type: str) -> None:
    message = parse_chat_request(image_body(f"data:{media_type};base64,{B64}")).request.messages[0]
    assert message.role is Role.USER
    assert message.content == (ImageBlock(media_type, DATA, None),)


@pytest.mark.parametrize(
    "url",
    [
        f"DATA:Image/PNG;BASE64,{B64}",
        f"data:image/png;charset=binary;base64,{B64}",
        f"data:image/png ; base64,{B64}",
    ],
    ids=["upper case", "extra parameter", "spaces"],
)
def test_data_url_header_is_read_leniently(url: str) -> None:
    message = parse_chat_request(image_body(url)).request.messages[0]
    assert message.content == (ImageBlock("image/png", DATA, None),)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("https://example.com/cat.png", "remote URLs are not fetched"),
        ("http://169.254.169.254/latest/meta-data", "remote URLs are not fetched"),
        ("file:///etc/passwd", "remote URLs are not fetched"),
        ("", "remote URLs are not fetched"),
        (f"data:image/png,{B64}", "expected the form data:<media type>;base64,<data>"),
        ("data:image/png;base64", "expected the form data:<media type>;base64,<data>"),
        (f"data:image/svg+xml;base64,{B64}", "Invalid image media type 'image/svg+xml'"),
        (f"data:;base64,{B64}", "Invalid image media type ''"),
        ("data:image/png;base64,not base64!", "not valid base64"),
        ("data:image/png;base64,iVBORw0KGgo", "not valid base64"),
        ("data:image/png;base64,ﬁ", "not valid base64"),
        ("data:image/png;base64,", "the image is empty"),
    ],
    ids=[
        "https",
        "metadata endpoint",
        "file",
        "empty url",
        "not base64",
        "no comma",
        "svg",
        "no media type",
        "bad characters",
        "bad padding",
        "non-ascii",
        "empty data",
    ],
)
def test_bad_image_urls_are_refused(url: str, needle: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_chat_request(image_body(url))
    assert info.value.param == "messages[0].content[0].image_url"
    assert info.value.code == "invalid_image_url"
    assert needle in info.value.message

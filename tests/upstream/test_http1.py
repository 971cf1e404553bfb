"""The ``openai`` backend's HTTP/1.1 response parser (`adapters.openai_upstream.http1`), with h11 as the oracle.

Every valid response is read whole, cut at every byte offset, byte by byte, and (hypothesis) cut at random
places, and must read exactly as h11 reads the same bytes: status, headers, body, and whether the connection
may carry the next request. Every malformed one must raise `ProtocolError` however it is cut; the few inputs
h11 accepts and we refuse on purpose (bare LF, control characters, whitespace after a chunk size...) are
marked as such.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.openai_upstream.http1 import MAX_CHUNK_LINE, MAX_HEAD, ProtocolError, ResponseParser


@dataclass(frozen=True)
class Read:
    """A response as a client reads it."""

    status: int
    fields: tuple[tuple[bytes, bytes], ...]
    body: bytes
    reusable: bool


def ours(pieces: Iterable[bytes]) -> Read:
    """Feed ``pieces`` the way `client` does: head first, then body until it ends; the end of the stream
    after the last piece if the body has not ended by then."""
    parser = ResponseParser()
    head = None
    body = bytearray()
    for piece in [*pieces, None]:
        if piece is None:
            parser.feed_eof()
        else:
            parser.feed(piece)
        if head is None:
            head = parser.head()
            if head is None:
                continue
        body += parser.body()
        if parser.done:
            break
    assert head is not None and parser.done
    return Read(head.status, tuple(head.fields), bytes(body), parser.reusable)


def oracle(data: bytes) -> Read:
    """h11's reading of ``data`` (the answer to a GET), then the end of the stream if it needs one."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    connection.send(h11.EndOfMessage())
    connection.receive_data(data)
    response = None
    body = bytearray()
    closed = False
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(b"")
            closed = True
            continue
        if isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            assert isinstance(event, h11.InformationalResponse), event
    assert response is not None
    fields = tuple((bytes(name), bytes(value)) for name, value in response.headers)
    return Read(response.status_code, fields, bytes(body), connection.their_state is h11.DONE and not closed)


def oracle_refuses(data: bytes) -> bool:
    try:
        oracle(data)
    except (h11.RemoteProtocolError, h11.LocalProtocolError):
        return True
    return False


def cuts(data: bytes) -> Iterable[list[bytes]]:
    """``data`` whole, cut in two at every offset, and byte by byte."""
    yield [data]
    for at in range(len(data) + 1):
        yield [data[:at], data[at:]]
    yield [data[i : i + 1] for i in range(len(data))]


VALID = {
    "content-length": b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}',
    "empty-length": b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    "no-reason": b"HTTP/1.1 429\r\nretry-after: 3\r\ncontent-length: 2\r\n\r\n{}",
    "empty-reason": b"HTTP/1.1 503 \r\ncontent-length: 1\r\n\r\nx",
    "ows-and-repeats": b"HTTP/1.1 200 OK\r\nX-A:  one \t\r\nx-a:two\r\nX-Empty:\r\nContent-Length: 3\r\n\r\nabc",
    "same-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;name=v;x\r\n!\r\n0\r\n\r\n",
    "chunked-hex-case": (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\na\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n"
    ),
    "chunked-trailers": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n"
    ),
    "chunked-sse": (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        b'f\r\ndata: {"a":1}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n'
    ),
    "until-eof": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it\r\n\r\nand more",
    "until-eof-empty": b"HTTP/1.1 500 Oops\r\n\r\n",
    "no-content": b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
    "not-modified": b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    "informational": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    ),
    "connection-close": b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok",
    "http-1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "http-1.0-keep-alive": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    "obs-text": b"HTTP/1.1 200 \xe9t\xe9\r\nX-Name: caf\xe9\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("data", VALID.values(), ids=VALID.keys())
def test_a_valid_response_reads_as_h11_reads_it_however_it_is_cut(data: bytes) -> None:
    expected = oracle(data)
    for pieces in cuts(data):
        assert as_h11_shows(ours(pieces)) == expected, pieces


def as_h11_shows(read: Read) -> Read:
    """Our reading with the framing values h11 rewrites rewritten alike: it folds ``Content-Length: 3, 3``
    to ``3`` and drops the repeats, and lowercases ``Transfer-Encoding`` (we keep what was sent)."""
    fields: list[tuple[bytes, bytes]] = []
    for name, value in read.fields:
        if name == b"content-length":
            value = value.split(b",")[0].strip()
            if (name, value) in fields:
                continue
        elif name == b"transfer-encoding":
            value = value.lower()
        fields.append((name, value))
    return Read(read.status, tuple(fields), read.body, read.reusable)


def test_framing_and_reuse_are_as_rfc_9112_says() -> None:
    assert ours([VALID["content-length"]]) == Read(
        200, ((b"content-type", b"application/json"), (b"content-length", b"7")), b'{"a":1}', True
    )
    assert ours([VALID["chunked"]]).body == b"hello!"
    assert ours([VALID["chunked-trailers"]]).fields == ((b"transfer-encoding", b"chunked"),)
    body = b"all of it\r\n\r\nand more"
    assert ours([VALID["until-eof"]]) == Read(200, ((b"content-type", b"text/plain"),), body, False)
    assert ours([VALID["no-content"]]).body == b""
    assert ours([VALID["no-content"]]).reusable
    assert ours([VALID["informational"]]).status == 200
    assert not ours([VALID["connection-close"]]).reusable
    assert not ours([VALID["http-1.0-keep-alive"]]).reusable


def test_chunked_wins_over_content_length_and_the_connection_is_not_reused() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    for pieces in cuts(data):
        read = ours(pieces)
        assert (read.body, read.reusable) == (b"ok", False)
    assert oracle(data).body == b"ok"  # h11 reads it the same way (and would reuse the connection)


def test_bytes_after_the_end_of_a_response_make_the_connection_unfit_for_reuse() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
    assert parser.head() is not None
    assert (parser.body(), parser.done, parser.reusable) == (b"ok", True, False)


def test_headers_as_a_mapping_join_repeated_names_in_order() -> None:
    parser = ResponseParser()
    parser.feed(VALID["ows-and-repeats"])
    head = parser.head()
    assert head is not None
    assert dict(head.mapping) == {"x-a": "one, two", "x-empty": "", "content-length": "3"}
    parser = ResponseParser()
    parser.feed(VALID["obs-text"])
    head = parser.head()
    assert head is not None and head.mapping["x-name"] == "caf\xe9"


def test_a_body_arrives_in_the_pieces_the_reads_deliver_de_chunked() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
    assert parser.head() is not None
    assert parser.body() == b"ab"
    parser.feed(b"c\r\n2\r\nde\r\n2\r\nfg\r\n")
    assert parser.body() == b"cdefg"  # two chunks in one read: one piece
    assert parser.body() == b""
    parser.feed(b"0\r\n\r\n")
    assert (parser.body(), parser.done, parser.reusable) == (b"", True, True)


# --- malformed input ----------------------------------------------------------------------------------------

HEAD = b"HTTP/1.1 200 OK\r\n"
#: (bytes, whether h11 refuses them too). Each is followed by the end of the stream (so h11 refuses some of
#: the long ones for being incomplete as well).
MALFORMED = {
    "closed-before-answering": (b"", True),
    "closed-mid-head": (HEAD + b"Content-Length: 2\r\n", True),
    "closed-mid-length-body": (HEAD + b"Content-Length: 5\r\n\r\nabc", True),
    "closed-mid-chunk": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab", True),
    "closed-before-last-chunk": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", True),
    "closed-in-trailers": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n", True),
    "not-http": (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", True),
    "http-2": (b"HTTP/2 200\r\n\r\n", True),
    "bad-version": (b"HTTP/1.x 200 OK\r\n\r\n", True),
    "two-digit-status": (b"HTTP/1.1 20 OK\r\n\r\n", True),
    "status-below-100": (b"HTTP/1.1 099 Odd\r\n\r\n", True),
    "no-space-before-status": (b"HTTP/1.1200 OK\r\n\r\n", True),
    "lowercase-http": (b"http/1.1 200 OK\r\n\r\n", True),
    "switching-protocols": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", True),
    "obs-fold": (HEAD + b"X-A: one\r\n two\r\nContent-Length: 0\r\n\r\n", False),
    "obs-fold-tab": (HEAD + b"X-A: one\r\n\ttwo\r\nContent-Length: 0\r\n\r\n", False),
    "no-colon": (HEAD + b"X-A one\r\nContent-Length: 0\r\n\r\n", True),
    "space-before-colon": (HEAD + b"X-A : one\r\nContent-Length: 0\r\n\r\n", True),
    "empty-name": (HEAD + b": one\r\nContent-Length: 0\r\n\r\n", True),
    "nul-in-value": (HEAD + b"X-A: o\x00ne\r\nContent-Length: 0\r\n\r\n", True),
    "control-in-value": (HEAD + b"X-A: o\x01ne\r\nContent-Length: 0\r\n\r\n", False),
    "bare-lf-in-head": (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", False),
    "bare-cr-in-value": (HEAD + b"X-A: o\rne\r\nContent-Length: 0\r\n\r\n", True),
    "bad-length": (HEAD + b"Content-Length: 12a\r\n\r\n", True),
    "negative-length": (HEAD + b"Content-Length: -1\r\n\r\n", True),
    "empty-length": (HEAD + b"Content-Length: \r\n\r\n", True),
    "conflicting-lengths": (HEAD + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", True),
    "conflicting-length-list": (HEAD + b"Content-Length: 3, 4\r\n\r\nabcd", True),
    "absurd-length": (HEAD + b"Content-Length: 1234567890123456789012\r\n\r\n", True),  # and too short
    "gzip-transfer": (HEAD + b"Transfer-Encoding: gzip\r\n\r\n", True),
    "gzip-chunked-transfer": (HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", True),
    "two-transfer-encodings": (HEAD + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", True),
    "bad-chunk-size": (HEAD + b"Transfer-Encoding: chunked\r\n\r\nxyz\r\n", True),
    "empty-chunk-size": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n\r\nab\r\n", True),
    "negative-chunk-size": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n", True),
    "huge-chunk-size": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n12345678901234567\r\n", True),  # too short
    "space-after-chunk-size": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2 \r\nab\r\n0\r\n\r\n", False),
    "space-before-extension": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2 ;x\r\nab\r\n0\r\n\r\n", True),
    "chunk-data-too-long": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", True),
    "chunk-without-crlf": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nab0\r\n\r\n", True),
    "chunk-bare-lf": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n", True),
    "bad-trailer": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\nnot a header\r\n\r\n", True),
    "control-in-extension": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2;a\x01b\r\nab\r\n0\r\n\r\n", False),
    "endless-trailer-line": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: " + b"a" * MAX_HEAD, True),
    "huge-head": (HEAD + b"X-A: " + b"a" * MAX_HEAD + b"\r\n\r\n", False),
    "many-headers": (HEAD + b"X-A: aaaaaaaaaaaa\r\n" * (MAX_HEAD // 18 + 1) + b"\r\n", False),
    "huge-chunk-line": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n1;" + b"x" * MAX_CHUNK_LINE + b"\r\n", True),
    "huge-trailers": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\n" + b"X-T: aaaaaaaaaa\r\n" * 5000, True),
}


def _ours_or_error(pieces: Sequence[bytes]) -> None:
    with pytest.raises(ProtocolError):
        ours(pieces)


@pytest.mark.parametrize(("data", "h11_refuses"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_response_is_a_protocol_error_however_it_is_cut(data: bytes, h11_refuses: bool) -> None:
    assert oracle_refuses(data) is h11_refuses
    _ours_or_error([data])
    if len(data) < 2000:
        for pieces in cuts(data):
            _ours_or_error(pieces)
    else:  # a long one: a few cuts (every offset would be quadratic in the test, not in the parser)
        for at in (0, 1, len(data) // 2, len(data) - 1, len(data)):
            _ours_or_error([data[:at], data[at:]])
        _ours_or_error([data[i : i + 1000] for i in range(0, len(data), 1000)])


def test_a_head_that_never_ends_is_refused_once_it_passes_the_cap_not_buffered_on() -> None:
    parser = ResponseParser()
    parser.feed(HEAD)
    with pytest.raises(ProtocolError, match="longer than"):
        for _ in range(MAX_HEAD):
            parser.feed(b"X-A: aaaaaaaaaaaaaaaaaaaaaaaaaa")  # no CRLF, ever
            assert parser.head() is None
    assert len(parser._buffer) <= MAX_HEAD + 64


def test_a_chunk_line_that_never_ends_is_refused_once_it_passes_the_cap() -> None:
    parser = ResponseParser()
    parser.feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    assert parser.head() is not None
    parser.feed(b"1")
    with pytest.raises(ProtocolError, match="chunk-size line"):
        for _ in range(MAX_CHUNK_LINE):
            parser.feed(b"0")
            assert parser.body() == b""


def test_misuse_is_a_protocol_error_too() -> None:
    parser = ResponseParser()
    parser.feed(HEAD + b"Content-Length: 0\r\n\r\n")
    with pytest.raises(ProtocolError, match="before the head"):
        parser.body()
    assert parser.head() is not None
    with pytest.raises(ProtocolError, match="already read"):
        parser.head()
    parser.feed_eof()  # after the end of the body, the end of the stream is nothing
    assert parser.done


# --- random responses, cut at random places -----------------------------------------------------------------

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VCHARS = bytes([*range(0x21, 0x7F), *range(0x80, 0x100)])
_names = (
    st.text(_TOKEN_CHARS, min_size=1, max_size=12)
    .map(str.encode)
    .filter(lambda name: name.lower() not in (b"content-length", b"transfer-encoding", b"connection"))
)
_words = st.binary(min_size=1, max_size=8).map(lambda raw: bytes(_VCHARS[b % len(_VCHARS)] for b in raw))
_values = st.lists(_words, max_size=4).map(b" ".join)
_fields = st.lists(st.tuples(_names, _values), max_size=6)


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    status = draw(st.sampled_from([200, 200, 201, 204, 304, 400, 404, 429, 500, 503]))
    framing = draw(st.sampled_from(["length", "chunked", "eof"]))
    body = draw(st.binary(max_size=300))
    if status in (204, 304):
        body = b""
    out = bytearray()
    for informational in draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2)):
        out += b"HTTP/1.1 %d Info\r\n" % informational
        out += b"".join(b"%s: %s\r\n" % field for field in draw(_fields)) + b"\r\n"
    out += b"HTTP/%s %d %s\r\n" % (version, status, draw(_values))
    fields = draw(_fields)
    if draw(st.booleans()):
        fields.append((b"Connection", draw(st.sampled_from([b"close", b"keep-alive", b"Keep-Alive, close"]))))
    if framing == "length":
        fields.insert(draw(st.integers(0, len(fields))), (b"Content-Length", b"%d" % len(body)))
    elif framing == "chunked":
        fields.insert(draw(st.integers(0, len(fields))), (b"Transfer-Encoding", b"chunked"))
    for name, value in fields:
        out += b"%s:%s%s\r\n" % (name, draw(st.sampled_from([b"", b" ", b" \t"])), value)
    out += b"\r\n"
    if status in (204, 304):
        return bytes(out)
    if framing != "chunked":
        return bytes(out + body)
    at = 0
    while at < len(body):
        size = draw(st.integers(1, max(1, len(body) - at)))
        extension = draw(st.sampled_from([b"", b";a", b';name=value;b="q"']))
        out += b"%x%s\r\n%s\r\n" % (size, extension, body[at : at + size])
        at += size
    out += b"0\r\n" + b"".join(b"%s: %s\r\n" % field for field in draw(_fields)) + b"\r\n"
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(data=responses(), positions=st.lists(st.integers(0, 2000), max_size=8))
def test_random_responses_cut_at_random_places_read_as_h11_reads_them(data: bytes, positions: list[int]) -> None:
    offsets = sorted({0, len(data), *(p % (len(data) + 1) for p in positions)})
    pieces = [data[a:b] for a, b in itertools.pairwise(offsets)]
    assert as_h11_shows(ours(pieces)) == oracle(data)

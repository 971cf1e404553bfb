"""The response side of HTTP/1.1 for the ``openai`` backend's client, sans-IO: bytes in, head and body out.

Theory of operation. `ResponseParser` reads one response to one request (a GET or a POST: never HEAD, never an
upgrade) from bytes fed to it as they arrive, cut anywhere. It has no I/O and no clock: the caller feeds what
each socket read returned (`feed`), or the end of the stream (`feed_eof`), and asks for what is now complete.

    state        waits for                               then
    HEAD         a blank line (head at most MAX_HEAD)   a 1xx head is skipped (HEAD again); 204/304 -> DONE;
                                                         chunked -> SIZE; Content-Length n -> LENGTH (n = 0:
                                                         DONE); neither -> UNTIL_EOF
    LENGTH       n more bytes                            DONE
    SIZE         ``hex[;ext]CRLF``                        size 0 -> TRAILERS, else DATA
    DATA         the chunk's bytes                       DATA_END
    DATA_END     CRLF                                    SIZE
    TRAILERS     header lines up to a blank one          DONE (trailers are checked, then dropped)
    UNTIL_EOF    the end of the stream                   DONE (the connection cannot be reused)

Body framing is RFC 9112 section 6.3's, and the parser is strict where the RFC lets a recipient choose: lines
end in CRLF (a bare LF or CR is an error), obs-fold is refused, a field value holds no control character but
HTAB, ``Transfer-Encoding`` must be exactly ``chunked`` (once; it wins over a ``Content-Length``, and such a
response is not followed by another on the connection), ``Content-Length`` is digits and several differing
values are refused, a chunk size is 1-16 hex digits followed directly by ``;`` or CRLF, and a 101 is refused
(nothing asked to switch). An end of stream before the framing says the body ended is an error, and so is
one before any byte of the head (the server closed the connection instead of answering). Every error is a
`ProtocolError`; no input makes the parser raise anything else or buffer without bound (a head or trailer
section is at most `MAX_HEAD` bytes, a chunk-size line at most `MAX_CHUNK_LINE`, and body bytes are handed
out as they arrive).

A response may be followed by another on the same connection (`reusable`) when it is HTTP/1.1, no
``Connection: close`` was sent, its body was framed by length or chunks and read to its end, and no byte
followed it (nothing was asked for: a stray byte means the stream is out of step). HTTP/1.0 answers are not
reused, as h11 (the reference these rules are tested against) does not reuse them either.

Header names are lowercased; `Head.fields` keeps every line in order, and `Head.mapping` is the `Mapping` the
backend reads, with repeated names joined by ``", "`` (RFC 9110 section 5.3, as ``httpx.Headers`` does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: The most bytes a response head (status line and header lines) or a trailer section may take.
MAX_HEAD = 64 * 1024
#: The most bytes a chunk-size line (size, extensions and CRLF) may take.
MAX_CHUNK_LINE = 4096

_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: [\t\x20-\x7e\x80-\xff]*)?")
#: ``name: value``: a token, a colon, optional whitespace (possessive, so a refused line costs one pass),
#: then visible characters, obs-text, SP and HTAB (the trailing whitespace is stripped after).
_FIELD_LINE = re.compile(rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*+([\t\x20-\x7e\x80-\xff]*)")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_CHUNK_EXT = re.compile(rb";[\t\x20-\x7e\x80-\xff]*")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))

# Parser states (see the module docstring).
HEAD, LENGTH, SIZE, DATA, DATA_END, TRAILERS, UNTIL_EOF, DONE = range(8)


class ProtocolError(Exception):
    """The bytes the server sent are not a valid HTTP/1.1 response to our request, or stopped too early."""


class Head:
    """A final response's status line and headers (lowercased names, in order)."""

    __slots__ = ("_mapping", "fields", "status")

    def __init__(self, status: int, fields: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.fields = fields
        self._mapping: dict[str, str] | None = None

    @property
    def mapping(self) -> Mapping[str, str]:
        """The headers as text, repeated names joined with ``", "`` in the order they came."""
        if self._mapping is None:
            joined: dict[str, str] = {}
            for raw_name, raw_value in self.fields:
                name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
                joined[name] = f"{joined[name]}, {value}" if name in joined else value
            self._mapping = joined
        return self._mapping


class ResponseParser:
    """One response, read incrementally (module docstring). ``feed`` bytes, then ask `head`, then `body`."""

    __slots__ = ("_buffer", "_keep_alive", "_left", "_scanned", "_section", "received", "state")

    def __init__(self) -> None:
        self._buffer = bytearray()
        #: Where the search for the end of the head or trailers resumes (what was already looked at).
        self._scanned = 0
        #: Bytes of the trailer section so far (bounded like a head).
        self._section = 0
        #: Body bytes still expected: of the whole body (LENGTH) or of the current chunk (DATA).
        self._left = 0
        self._keep_alive = True
        #: True once any byte was fed.
        self.received = False
        self.state = HEAD

    @property
    def done(self) -> bool:
        """True once the whole response (head and body) was read."""
        return self.state == DONE

    @property
    def reusable(self) -> bool:
        """True when the connection may carry the next request (module docstring)."""
        return self.state == DONE and self._keep_alive and not self._buffer

    def feed(self, data: bytes | bytearray) -> None:
        """Add bytes read from the connection."""
        self._buffer += data
        self.received = True

    def feed_eof(self) -> None:
        """The server closed the connection: the end of a body read to the end of the stream, else an error."""
        if self.state == UNTIL_EOF:
            self.state = DONE
            self._keep_alive = False
        elif self.state == HEAD and not self._buffer:
            raise ProtocolError("the server closed the connection without answering")
        elif self.state == HEAD:
            raise ProtocolError("the server closed the connection in the middle of the response head")
        elif self.state != DONE:
            raise ProtocolError("the server closed the connection before the end of the body")

    def head(self) -> Head | None:
        """The final response's head once it was all fed, else None (1xx heads are skipped). Call it until it
        returns a head, before `body`."""
        while self.state == HEAD:
            buffer = self._buffer
            end = buffer.find(b"\r\n\r\n", self._scanned)
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise ProtocolError(f"the response head is longer than {MAX_HEAD} bytes")
                self._scanned = max(0, len(buffer) - 3)
                return None
            if end > MAX_HEAD:
                raise ProtocolError(f"the response head is longer than {MAX_HEAD} bytes")
            lines = bytes(buffer[:end]).split(b"\r\n")
            del buffer[: end + 4]
            self._scanned = 0
            head = self._start(lines)
            if head is not None:
                return head
        raise ProtocolError("the response head was already read")

    def _start(self, lines: list[bytes]) -> Head | None:
        """Parse one head and enter the state its framing says; None for a 1xx (skipped)."""
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(status_line[2])
        if status < 100:
            raise ProtocolError(f"an HTTP status below 100: {status}")
        fields = _fields(lines, 1)
        if status < 200:
            if status == 101:
                raise ProtocolError("the server switched protocols, which was not asked for")
            return None
        keep_alive = status_line[1] != b"0"  # HTTP/1.0 answers are not reused (module docstring)
        lengths: set[bytes] = set()
        chunked = False
        for name, value in fields:
            if name not in _FRAMING:
                continue
            if name == b"content-length":
                for length in value.split(b","):
                    length = length.strip(b" \t")
                    if _DIGITS.fullmatch(length) is None:
                        raise ProtocolError(f"a Content-Length that is not a number: {value[:40]!r}")
                    lengths.add(length)
            elif name == b"transfer-encoding":
                if chunked:
                    raise ProtocolError("more than one Transfer-Encoding header")
                if value.lower() != b"chunked":
                    raise ProtocolError(f"a Transfer-Encoding other than chunked: {value[:40]!r}")
                chunked = True
            elif any(token.strip(b" \t").lower() == b"close" for token in value.split(b",")):
                keep_alive = False
        if len(lengths) > 1:
            raise ProtocolError("conflicting Content-Length values")
        self._keep_alive = keep_alive
        if status in (204, 304):
            self.state = DONE
        elif chunked:
            self.state = SIZE
            if lengths:  # RFC 9112 section 6.3: chunked wins, and the connection is not trusted further
                self._keep_alive = False
        elif lengths:
            self._left = int(lengths.pop())
            self.state = LENGTH if self._left else DONE
        else:
            self.state = UNTIL_EOF
        return Head(status, fields)

    def body(self) -> bytes:
        """The body bytes fed so far and not yet returned, de-chunked (b"" when there are none); `done`
        turns true once the body has ended."""
        state = self.state
        buffer = self._buffer
        if state == LENGTH:
            if len(buffer) < self._left:
                piece = bytes(buffer)
                buffer.clear()
                self._left -= len(piece)
                return piece
            piece = bytes(buffer[: self._left])
            del buffer[: self._left]
            self._left = 0
            self.state = DONE
            return piece
        if state == UNTIL_EOF:
            piece = bytes(buffer)
            buffer.clear()
            return piece
        if state == HEAD:
            raise ProtocolError("the body was asked for before the head was read")
        if SIZE <= state <= TRAILERS:
            return self._chunks()
        return b""

    def _chunks(self) -> bytes:
        """De-chunk what is buffered, as far as it goes."""
        buffer = self._buffer
        pieces: list[bytes] = []
        at = 0
        size = len(buffer)
        while True:
            state = self.state
            if state == DATA:
                take = min(self._left, size - at)
                if take == 0:
                    break
                pieces.append(bytes(buffer[at : at + take]))
                at += take
                self._left -= take
                if self._left == 0:
                    self.state = DATA_END
            elif state == SIZE:
                end = buffer.find(b"\r\n", at, at + MAX_CHUNK_LINE)
                if end < 0:
                    if size - at >= MAX_CHUNK_LINE:
                        raise ProtocolError(f"a chunk-size line longer than {MAX_CHUNK_LINE} bytes")
                    break
                self._left = _chunk_size(bytes(buffer[at:end]))
                at = end + 2
                self.state = DATA if self._left else TRAILERS
            elif state == DATA_END:
                if size - at < 2:
                    break
                if buffer[at : at + 2] != b"\r\n":
                    raise ProtocolError("a chunk's data is not followed by CRLF")
                at += 2
                self.state = SIZE
            else:  # TRAILERS
                end = buffer.find(b"\r\n", at)
                if end < 0:
                    if self._section + size - at > MAX_HEAD:
                        raise ProtocolError(f"the trailer section is longer than {MAX_HEAD} bytes")
                    break
                self._section += end + 2 - at
                if self._section > MAX_HEAD:
                    raise ProtocolError(f"the trailer section is longer than {MAX_HEAD} bytes")
                line = bytes(buffer[at:end])
                at = end + 2
                if not line:
                    self.state = DONE
                    break
                _fields([line], 0)  # checked like a header line, then dropped
        del buffer[:at]
        return b"".join(pieces)


def _fields(lines: list[bytes], start: int) -> list[tuple[bytes, bytes]]:
    """The header lines ``lines[start:]`` as (lowercased name, value) pairs; a malformed one raises."""
    fields: list[tuple[bytes, bytes]] = []
    match = _FIELD_LINE.fullmatch
    for index in range(start, len(lines)):
        line = lines[index]
        parsed = match(line)
        if parsed is None:
            if line[:1] in (b" ", b"\t"):
                raise ProtocolError("a folded header line (obs-fold)")
            raise ProtocolError(f"a malformed header line: {line[:80]!r}")
        name, value = parsed.groups()
        fields.append((name.lower(), value.rstrip(b" \t")))
    return fields


def _chunk_size(line: bytes) -> int:
    size, semicolon, extension = line.partition(b";")
    if _CHUNK_SIZE.fullmatch(size) is None:
        raise ProtocolError(f"a malformed chunk size: {line[:40]!r}")
    if semicolon and _CHUNK_EXT.fullmatch(semicolon + extension) is None:
        raise ProtocolError(f"a malformed chunk extension: {line[:40]!r}")
    return int(size, 16)

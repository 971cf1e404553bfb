"""Where one sequence's generated text goes: stop sequences, UTF-8 reassembly, output modes, log probabilities.

The decode thread hands every sampled token's bytes to the sequence's `TextRouter`:

- an incremental UTF-8 decoder holds back a character split across tokens until it is complete;
- a `StopScanner` holds back text that might be the start of a stop sequence until it is known not to be one;
- each token's log-probability record travels with its text (`_Aligned`): it is released with the piece that
  completes its text, so the records of a choice join to exactly its content; at a stop sequence, a token
  whose text was cut keeps only the part shown, and tokens wholly after the cut are dropped;
- the output mode decides what happens to released text (`Mode`): ``TEXT`` streams it; ``WHOLE`` keeps it (a
  forced tool call, or a JSON answer that may be a call, is only known to be one when complete); ``AUTO``
  (``tool_choice: "auto"`` with tools) waits for the first non-blank character: ``{`` means the model is
  starting a call, so the sequence restarts from its prompt under the tool-call grammar and continues as
  ``WHOLE``; anything else is an answer and streams as ``TEXT``.
"""

from __future__ import annotations

import codecs
import enum
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..types import StopReason, TokenLogprob


class Mode(enum.Enum):
    TEXT = "text"
    WHOLE = "whole"
    AUTO = "auto"


class StopScanner:
    """Finds stop sequences in streamed text, holding back only what could still become one."""

    def __init__(self, stops: Sequence[tuple[str, StopReason]]) -> None:
        self._stops = [(s, reason) for s, reason in stops if s]
        self._pending = ""

    def feed(self, text: str) -> tuple[str, StopReason | None]:
        """Add ``text``; return the text now safe to emit and, if a stop sequence completed, its reason."""
        self._pending += text
        # The stop sequence that *completes* first wins, as it would have token by token, so the result never
        # depends on how the text was chunked.
        best: tuple[int, int, StopReason] | None = None
        for stop, reason in self._stops:
            at = self._pending.find(stop)
            if at != -1 and (best is None or (at + len(stop), at) < best[:2]):
                best = (at + len(stop), at, reason)
        if best is not None:
            safe = self._pending[: best[1]]
            self._pending = ""
            return safe, best[2]
        hold = 0
        for stop, _ in self._stops:
            for length in range(min(len(stop) - 1, len(self._pending)), hold, -1):
                if self._pending.endswith(stop[:length]):
                    hold = length
                    break
        cut = len(self._pending) - hold
        safe, self._pending = self._pending[:cut], self._pending[cut:]
        return safe, None

    def flush(self) -> str:
        """Whatever is held back, at the end of the generation."""
        rest, self._pending = self._pending, ""
        return rest


@dataclass(slots=True)
class _Held:
    """A token's text not yet wholly released, its record, and how many of its characters were released."""

    text: str
    record: TokenLogprob
    released: int = 0


class _Aligned:
    """A `StopScanner` whose released text carries the log-probability records of the tokens it completes."""

    def __init__(self, stops: Sequence[tuple[str, StopReason]]) -> None:
        self._scanner = StopScanner(stops)
        self._pending: deque[_Held] = deque()

    def feed(self, text: str, record: TokenLogprob | None) -> tuple[str, list[TokenLogprob], StopReason | None]:
        if record is not None:
            self._pending.append(_Held(text, record))
        safe, stopped = self._scanner.feed(text)
        return safe, self._release(len(safe), final=stopped is not None), stopped

    def flush(self) -> tuple[str, list[TokenLogprob]]:
        rest = self._scanner.flush()
        return rest, self._release(len(rest), final=True)

    def _release(self, count: int, *, final: bool) -> list[TokenLogprob]:
        out: list[TokenLogprob] = []
        while self._pending:
            held = self._pending[0]
            left = len(held.text) - held.released
            if left > count:
                held.released += count
                break
            count -= left
            out.append(replace(held.record, token=held.text))
            self._pending.popleft()
        if final:
            out += [replace(h.record, token=h.text[: h.released]) for h in self._pending if h.released]
            self._pending.clear()
        return out


#: What the router sends out: (text, records or None when log probabilities were not asked for).
Emit = Callable[[str, "tuple[TokenLogprob, ...] | None"], None]


@dataclass(slots=True)
class TextRouter:
    """One sequence's text path (see the module docstring). ``emit`` receives streamed pieces."""

    mode: Mode
    stops: Sequence[tuple[str, StopReason]]
    emit: Emit
    logprobs: bool
    kept: list[str] = field(default_factory=list)
    kept_records: list[TokenLogprob] = field(default_factory=list)
    undecided: str = ""  # AUTO: blank text seen before the first visible character
    undecided_records: list[TokenLogprob] = field(default_factory=list)
    _utf8: codecs.IncrementalDecoder = field(init=False)
    _aligned: _Aligned = field(init=False)

    def __post_init__(self) -> None:
        self.restart(self.mode)

    def restart(self, mode: Mode) -> None:
        """Start over (AUTO turning into a call): nothing kept, nothing held back."""
        self.mode = mode
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._aligned = _Aligned(self.stops)
        self.kept, self.kept_records, self.undecided, self.undecided_records = [], [], "", []

    def feed(self, piece: bytes, record: TokenLogprob | None) -> tuple[StopReason | None, bool]:
        """One token's bytes; returns (stop reason if a stop sequence completed, True if AUTO saw a call)."""
        text = self._utf8.decode(piece)
        safe, records, stopped = self._aligned.feed(text, record)
        if self._take(safe, records):
            return None, True
        return stopped, False

    def finish(self) -> bool:
        """The generation ended (end of turn or max_tokens): release what is held; True if AUTO saw a call."""
        tail = self._utf8.decode(b"", final=True)
        safe, records, _ = self._aligned.feed(tail, None)
        rest, more = self._aligned.flush()
        if self._take(safe + rest, records + more):
            return True
        self.settle()
        return False

    def settle(self) -> None:
        """At the end: an AUTO generation that produced only blank text has that text as its answer."""
        if self.mode is Mode.AUTO:
            self.mode = Mode.TEXT
            self._send(self.undecided, self.undecided_records)
            self.undecided, self.undecided_records = "", []

    def _send(self, text: str, records: list[TokenLogprob]) -> None:
        if text or records:
            self.emit(text, tuple(records) if self.logprobs else None)

    def _take(self, text: str, records: list[TokenLogprob]) -> bool:
        if not text and not records:
            return False
        if self.mode is Mode.AUTO:
            self.undecided += text
            self.undecided_records += records
            stripped = self.undecided.lstrip()
            if not stripped:
                return False
            if stripped.startswith("{"):
                return True
            self.mode = Mode.TEXT
            text, records = self.undecided, self.undecided_records
            self.undecided, self.undecided_records = "", []
        if self.mode is Mode.TEXT:
            self._send(text, records)
        else:
            self.kept.append(text)
            self.kept_records += records
        return False

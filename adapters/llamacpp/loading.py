"""Load a `llama_cpp.Llama` without ever touching the process's stdout and stderr.

Why this exists: a quiet load (``verbose=False``) makes llama-cpp-python's ``suppress_stdout_stderr`` point file
descriptors 1 and 2 at /dev/null and put its saved copies back afterwards. Two loads in two threads interleave
those steps: the load that finishes last restores the other's /dev/null copy, and the daemon's whole output -
"ready" line, request log, errors - is gone for good. Even a single load blanks every line the event loop logs
meanwhile. So `load_llama` loads with ``verbose=True``, which skips that redirection entirely, and deals with
what a verbose load prints instead:

- llama.cpp's native log (hundreds of lines per load, warnings while decoding) goes through `logging`, to
  ``trinfer.llamacpp.native``: its debug and info lines at DEBUG, warnings and errors at their own level. The
  callback is llama.cpp's one process-wide log hook, installed once.
- the Python-level prints of a verbose load (system info, the metadata dump, chat-format guesses) go to
  ``trinfer.llamacpp.load`` at DEBUG: while any load runs, ``sys.stdout``/``sys.stderr`` are streams that send
  a loading thread's writes there and pass every other thread's through to the real stream. Loads may overlap
  (the swap is reference-counted under a lock), and the real streams are back once the last load has ended.
- the loaded object gets ``verbose = False``, so generations and embeddings print nothing.

This is process-wide state by necessity: file descriptors, ``sys.stderr`` and llama.cpp's log hook all are.
"""

from __future__ import annotations

import ctypes
import io
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

native_log = logging.getLogger("trinfer.llamacpp.native")
load_log = logging.getLogger("trinfer.llamacpp.load")

#: ggml's log levels (``enum ggml_log_level``) -> logging levels. llama.cpp's INFO is load chatter: DEBUG here.
_NATIVE_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_CONTINUE = 5  # GGML_LOG_LEVEL_CONT: more of the previous message


class _LineAssembler:
    """Pieces of text, from any number of threads, joined into whole lines and sent to ``emit(level, line)``.

    Each thread has its own partial line. A piece with a level starts a new message (an unfinished previous one
    is emitted first); a piece without one continues the current message at its level.
    """

    def __init__(self, emit: Callable[[int, str], None]) -> None:
        self._emit = emit
        self._local = threading.local()

    def _state(self) -> _Partial:
        state: _Partial | None = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _Partial()
        return state

    def feed(self, text: str, level: int | None = None) -> None:
        state = self._state()
        if level is not None:
            self.flush()
            state.level = level
        *lines, state.text = (state.text + text).split("\n")
        for line in lines:
            if line.strip():
                self._emit(state.level, line.rstrip())

    def flush(self) -> None:
        """Emit the calling thread's unfinished line, if any."""
        state = self._state()
        if state.text.strip():
            self._emit(state.level, state.text.rstrip())
        state.text = ""


@dataclass
class _Partial:
    text: str = ""
    level: int = logging.DEBUG


_native_lines = _LineAssembler(lambda level, line: native_log.log(level, "%s", line))
_callback: Any = None  # the installed ctypes callback; kept referenced so it is never garbage collected
_callback_lock = threading.Lock()


def install_native_log() -> None:
    """Point llama.cpp's log hook at `native_log` (once per process)."""
    global _callback
    with _callback_lock:
        if _callback is not None:
            return
        import llama_cpp

        @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
        def forward(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
            decoded = text.decode("utf-8", "replace")
            _native_lines.feed(decoded, None if level == _CONTINUE else _NATIVE_LEVELS.get(level, logging.DEBUG))

        llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
        _callback = forward


class _RoutedStream(io.TextIOBase):
    """A text stream that sends the writes of the threads in ``loaders`` to ``lines`` and others to ``real``."""

    def __init__(self, real: TextIO, loaders: set[int], lines: _LineAssembler) -> None:
        super().__init__()
        self.real = real
        self._loaders = loaders
        self._lines = lines
        self._writing = threading.local()  # a log handler that itself writes to sys.stderr must not loop

    def write(self, text: str) -> int:
        if threading.get_ident() not in self._loaders or getattr(self._writing, "active", False):
            return self.real.write(text)
        self._writing.active = True
        try:
            self._lines.feed(text)
        finally:
            self._writing.active = False
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() not in self._loaders:
            self.real.flush()

    def fileno(self) -> int:
        return self.real.fileno()

    def isatty(self) -> bool:
        return self.real.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.real.encoding


class _LoadOutput:
    """Reference-counted ``sys.stdout``/``sys.stderr`` routing while at least one load runs (module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaders: set[int] = set()
        self._lines = _LineAssembler(lambda level, line: load_log.log(level, "%s", line))
        self._saved: tuple[TextIO, TextIO] | None = None

    @contextmanager
    def routed(self) -> Iterator[None]:
        with self._lock:
            if self._saved is None:
                self._saved = (sys.stdout, sys.stderr)
                sys.stdout = _RoutedStream(sys.stdout, self._loaders, self._lines)
                sys.stderr = _RoutedStream(sys.stderr, self._loaders, self._lines)
            self._loaders.add(threading.get_ident())
        try:
            yield
        finally:
            self._lines.flush()
            with self._lock:
                self._loaders.discard(threading.get_ident())
                if not self._loaders and self._saved is not None:
                    sys.stdout, sys.stderr = self._saved
                    self._saved = None


_load_output = _LoadOutput()


def load_llama(**kwargs: Any) -> Any:
    """Blocking: ``llama_cpp.Llama(**kwargs)`` loaded as the module docstring explains (never pass ``verbose``).

    Exceptions are llama-cpp-python's own; callers translate them (`adapters.llamacpp.errors`).
    """
    import llama_cpp

    install_native_log()
    with _load_output.routed():
        try:
            llama = llama_cpp.Llama(**kwargs, verbose=True)
        finally:
            _native_lines.flush()
    llama.verbose = False
    return llama

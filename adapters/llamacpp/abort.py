"""A flag llama.cpp polls while it computes a step, so a step that only cancelled requests wait for is abandoned.

``llama_set_abort_callback(ctx, callback, data)``: ggml's CPU backend calls ``callback(data)`` after every node
of the graph (hundreds per ``llama_decode``); when it returns true, the decode stops and returns 2, and llama.cpp
removes the positions of the micro-batch it was computing from the KV cache. A Python callback would take the
GIL at every node - from the decode thread, against the event loop holding it - so the callback is C code
that only reads memory: libc's ``strlen`` on a two-byte buffer whose second byte is always 0. It returns 0 or
1, which is what a ``bool`` return register holds for false and true on the ABIs llama.cpp's CPU backend
targets (x86-64 and AArch64 return both in the same register, read as its low byte). Setting the first byte
is one store, visible to the decode thread at its next node.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any


class StepAbort:
    """The abort flag of one llama.cpp context. `set` from any thread; `clear` before each step."""

    def __init__(self, lib: Any, ctx: Any) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        self._flag = ctypes.create_string_buffer(2)  # b"\0\0": strlen -> 0 (go on); b"\1\0": 1 (abort)
        self._callback = lib.ggml_abort_callback(ctypes.cast(libc.strlen, ctypes.c_void_p).value)
        lib.llama_set_abort_callback(ctx, self._callback, ctypes.cast(self._flag, ctypes.c_void_p))

    def set(self) -> None:
        self._flag[0] = b"\x01"

    def clear(self) -> None:
        self._flag[0] = b"\x00"

    @property
    def is_set(self) -> bool:
        return self._flag[0] != b"\x00"

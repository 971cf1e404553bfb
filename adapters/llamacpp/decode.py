"""The token loop that runs in the worker thread: prompt in, text pieces out, one token at a time.

Theory of operation. `decode` is blocking and runs in exactly one worker thread per generation, with the
backend's lock held, so a `Llama` (not thread-safe) is never used by two generations at once. It

1. tokenizes the prompt and refuses (400 ``context_length_exceeded``) a prompt that leaves no room for even one
   generated token - the prompt is never truncated;
2. evaluates a long prompt in ``n_batch`` chunks, checking ``cancel`` between them (`_Run.prefill`), then
   iterates llama-cpp-python's low-level ``Llama.generate`` (which evaluates the rest of the prompt, reusing the
   KV cache for a shared prefix, then samples one token per step), and after *every* sampled token checks the
   generation's ``cancel`` event; the trio side sets it the moment the request is cancelled, so decoding
   stops within one token (the token being computed when the cancel arrived);
3. turns tokens into text with an incremental UTF-8 decoder (a character split across tokens is held back
   until complete) and a stop-sequence scanner (text that might be the start of a stop sequence is held back
   until it is known not to be one), and hands each piece to ``emit`` - which, from the backend, blocks on the
   trio side's bounded channel, so a slow reader slows decoding instead of growing a buffer.

Output modes (`Mode`): ``TEXT`` streams pieces; ``WHOLE`` keeps everything and returns it (a forced tool call,
or a JSON answer that may be a call, is only known to be one when complete); ``AUTO`` is ``tool_choice:
"auto"`` with tools: the first non-blank character decides. ``{`` means the model is starting a call, so the
generation restarts from the prompt under the tool-call grammar (which guarantees a valid call) and
continues as ``WHOLE``; anything else is an answer and streams as ``TEXT``, unconstrained.
"""

from __future__ import annotations

import codecs
import enum
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest
from ..types import SamplingParams, StopReason
from .errors import Phase, translate
from .grammar import validate_in_llama
from .template import Prompt

# OpenAI's defaults for what a request leaves out, plus llama.cpp's top_k/min_p defaults, which keep small
# models from wandering into the long tail at temperature 1.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
DEFAULT_TOP_K = 40
DEFAULT_MIN_P = 0.05


#: llama.cpp's sampler takes a 32-bit seed and treats 0xFFFFFFFF as "pick a random one".
SEED_MODULUS = 0xFFFFFFFF


def sampler_seed(seed: int) -> int:
    """Map any request seed (OpenAI allows int64, negative too) to a fixed sampler seed in [0, 2**32 - 2].

    ``seed % 0xFFFFFFFF``: never llama.cpp's "random" value, so every seed is repeatable; seeds in
    [0, 2**32 - 2] are used as they are, -1 becomes 2**32 - 2, 2**32 - 1 becomes 0, and since 2**32 leaves
    remainder 1, 2**32 becomes 1 and 2**40 becomes 2**8 = 256.
    """
    return seed % SEED_MODULUS


class Mode(enum.Enum):
    TEXT = "text"
    WHOLE = "whole"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class DecodeJob:
    """Everything the worker thread needs for one generation (built on the trio side, never mutated)."""

    prompt: Prompt
    sampling: SamplingParams
    mode: Mode = Mode.TEXT
    grammar: str | None = None  # GBNF applied from the first token
    call_grammar: str | None = None  # AUTO only: the grammar a call restarts under
    grammar_param: str = "response_format"
    default_seed: int | None = None
    apply_user_stops: bool = True


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """How a generation ended. ``text`` is the kept output (``WHOLE`` mode; empty for streamed text);
    ``is_call`` is true when an ``AUTO`` generation turned into a tool call."""

    stop_reason: StopReason
    prompt_tokens: int
    completion_tokens: int
    text: str = ""
    is_call: bool = False
    cancelled: bool = False


@dataclass(slots=True)
class DecodeCounters:
    """Observable totals (shown on /admin/status; tests use them to see when decoding really stopped).

    Written by the worker thread, read by the trio thread; each field is one int, updated atomically under
    the GIL.
    """

    generations: int = 0
    tokens_decoded: int = 0
    prompt_batches: int = 0  # prompt chunks evaluated before llama.cpp's own generate (see `_Run.prefill`)
    threads_running: int = 0
    cancelled: int = 0


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


def _prompt_tokens(llama: Any, prompt: Prompt) -> list[int]:
    try:
        tokens: list[int] = llama.tokenize(prompt.text.encode("utf-8"), add_bos=prompt.add_bos, special=True)
    except Exception as exc:
        raise translate(exc, Phase.TOKENIZE) from exc
    return tokens


def _logits_processor(llama: Any, bias: Sequence[tuple[int, float]]) -> Any:
    """A llama-cpp-python logits processor adding OpenAI-style ``logit_bias`` (-100 bans, +100 forces)."""
    import llama_cpp

    n_vocab = llama.n_vocab()
    for token, _ in bias:
        if not 0 <= token < n_vocab:
            raise InvalidRequest(
                f"logit_bias names token {token}, but this model's vocabulary has {n_vocab} tokens",
                param="logit_bias",
            )
    table = dict(bias)

    def apply(input_ids: Any, scores: Any) -> Any:
        for token, value in table.items():
            scores[token] += value
        return scores

    return llama_cpp.LogitsProcessorList([apply])


@dataclass(slots=True)
class _Run:
    """The mutable state of one generation inside the worker thread."""

    llama: Any
    job: DecodeJob
    emit: Callable[[str], None]
    cancel: threading.Event
    counters: DecodeCounters
    prompt: list[int] = field(default_factory=list)
    completion_tokens: int = 0
    kept: list[str] = field(default_factory=list)
    mode: Mode = Mode.TEXT
    undecided: str = ""  # AUTO: blank text seen before the first visible character

    def generate(self, grammar_text: str | None, budget: int) -> tuple[StopReason, bool, bool]:
        """Sample up to ``budget`` tokens; return (stop reason, cancelled, restart-as-call)."""
        import llama_cpp
        from llama_cpp.llama_grammar import LlamaGrammar

        sampling = self.job.sampling
        grammar = LlamaGrammar.from_string(grammar_text, verbose=False) if grammar_text else None
        processor = _logits_processor(self.llama, sampling.logit_bias) if sampling.logit_bias else None
        stops: list[tuple[str, StopReason]] = [(s, StopReason.END) for s in self.job.prompt.stop]
        if self.job.apply_user_stops:
            stops += [(s, StopReason.STOP_SEQUENCE) for s in sampling.stop]
        scanner = StopScanner(stops)
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = self.llama._model.vocab
        seed = sampling.seed if sampling.seed is not None else self.job.default_seed
        self.llama.set_seed(sampler_seed(seed) if seed is not None else random.randrange(SEED_MODULUS))
        temperature = sampling.temperature if sampling.temperature is not None else DEFAULT_TEMPERATURE
        if self.prefill():
            return StopReason.END, True, False
        tokens = self.llama.generate(
            self.prompt,
            temp=temperature,
            top_p=sampling.top_p if sampling.top_p is not None else DEFAULT_TOP_P,
            top_k=sampling.top_k if sampling.top_k is not None else DEFAULT_TOP_K,
            min_p=sampling.min_p if sampling.min_p is not None else DEFAULT_MIN_P,
            frequency_penalty=sampling.frequency_penalty or 0.0,
            presence_penalty=sampling.presence_penalty or 0.0,
            repeat_penalty=1.0,
            logits_processor=processor,
            grammar=grammar,
        )
        produced = 0
        try:
            while produced < budget:
                if self.cancel.is_set():
                    return StopReason.END, True, False
                try:
                    token = next(tokens)
                except StopIteration:
                    return StopReason.END, False, False
                except Exception as exc:
                    raise translate(exc, Phase.DECODE) from exc
                self.counters.tokens_decoded += 1
                if self.cancel.is_set():
                    return StopReason.END, True, False
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                produced += 1
                self.completion_tokens += 1
                piece = utf8.decode(self.llama.detokenize([token]))
                safe, stopped = scanner.feed(piece)
                if self.take(safe):
                    return StopReason.END, False, True
                if stopped is not None:
                    return stopped, False, False
            else:
                self.take(scanner.feed(utf8.decode(b"", final=True))[0] + scanner.flush())
                return StopReason.MAX_TOKENS, False, False
            if self.take(scanner.feed(utf8.decode(b"", final=True))[0] + scanner.flush()):
                return StopReason.END, False, True
            return StopReason.END, False, False
        finally:
            tokens.close()

    def prefill(self) -> bool:
        """Evaluate the prompt's uncached part, all but its last ``n_batch`` chunk, one chunk at a time; True
        if cancelled between chunks.

        ``Llama.generate`` evaluates the whole prompt in one call, with no way to stop it: a 2,000-token prompt
        kept the thread busy for seconds after a client left. This does the same work first, in the same
        ``n_batch`` chunks from the same starting point (the longest cached prefix, as ``generate`` finds it),
        checking ``cancel`` between them. ``generate`` then finds all but the last chunk cached and evaluates
        that one, so each token is evaluated in the same batch as before and the output is unchanged. A prompt
        that fits one chunk is left to ``generate`` untouched.
        """
        llama, prompt = self.llama, self.prompt
        n_batch = int(llama.n_batch)
        cached = 0
        if llama.n_tokens > 0:
            for held, wanted in zip(llama._input_ids, prompt, strict=False):
                if held != wanted:
                    break
                cached += 1
            cached = min(cached, len(prompt) - 1)  # generate re-evaluates at least the last prompt token
        if len(prompt) - cached <= n_batch:
            return False
        try:
            if cached > 0 and llama._ctx.kv_cache_seq_rm(-1, cached, -1):
                llama.n_tokens = cached
            else:
                llama.reset()
            while len(prompt) - llama.n_tokens > n_batch:
                if self.cancel.is_set():
                    return True
                llama.eval(prompt[llama.n_tokens : llama.n_tokens + n_batch])
                self.counters.prompt_batches += 1
        except Exception as exc:
            raise translate(exc, Phase.DECODE) from exc
        return False

    def take(self, text: str) -> bool:
        """Route a safe piece of text by mode; True when AUTO just saw the start of a tool call."""
        if not text:
            return False
        if self.mode is Mode.AUTO:
            self.undecided += text
            stripped = self.undecided.lstrip()
            if not stripped:
                return False
            if stripped.startswith("{"):
                return True
            self.mode, text, self.undecided = Mode.TEXT, self.undecided, ""
        if self.mode is Mode.TEXT:
            self.emit(text)
        else:
            self.kept.append(text)
        return False


def decode(
    llama: Any, job: DecodeJob, emit: Callable[[str], None], cancel: threading.Event, counters: DecodeCounters
) -> DecodeResult:
    """Run one generation (blocking; see the module docstring). ``emit`` receives text pieces in TEXT mode."""
    counters.threads_running += 1
    counters.generations += 1
    try:
        result = _decode(llama, job, emit, cancel, counters)
    except BaseException:
        if cancel.is_set():  # ended by the request's cancellation (e.g. Cancelled raised by emit)
            counters.cancelled += 1
        raise
    finally:
        counters.threads_running -= 1
    if result.cancelled:
        counters.cancelled += 1
    return result


def _decode(
    llama: Any, job: DecodeJob, emit: Callable[[str], None], cancel: threading.Event, counters: DecodeCounters
) -> DecodeResult:
    """`decode` without the bookkeeping."""
    run = _Run(llama, job, emit, cancel, counters, mode=job.mode)
    run.prompt = _prompt_tokens(llama, job.prompt)
    n_ctx = int(llama.n_ctx())
    room = n_ctx - len(run.prompt)
    if room < 1:
        raise InvalidRequest(
            f"This model's maximum context length is {n_ctx} tokens. However, your messages resulted in "
            f"{len(run.prompt)} tokens. Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    # max_tokens larger than the room left is capped to it (finish_reason "length" when reached).
    budget = min(job.sampling.max_tokens, room) if job.sampling.max_tokens is not None else room
    for grammar_text in (job.grammar, job.call_grammar):
        if grammar_text:
            validate_in_llama(llama, grammar_text, job.grammar_param)
    reason, cancelled, restart = run.generate(job.grammar, budget)
    if restart and not cancelled:
        # The tokens that began the call are discarded and the call is generated again, from the prompt,
        # under the call grammar. They were computed, so usage counts them, and they come out of max_tokens.
        run.mode, run.kept, run.undecided = Mode.WHOLE, [], ""
        reason, cancelled, _ = run.generate(job.call_grammar, budget - run.completion_tokens)
    if run.mode is Mode.AUTO and run.undecided:  # only blank text was generated: it is the answer
        run.mode = Mode.TEXT
        run.emit(run.undecided)
    return DecodeResult(
        stop_reason=reason,
        prompt_tokens=len(run.prompt),
        completion_tokens=run.completion_tokens,
        text="".join(run.kept),
        is_call=restart,
        cancelled=cancelled,
    )

"""Continuous batching: one decode thread owns the llama.cpp context and decodes every running sequence together.

Theory of operation. The context has ``parallel`` sequence ids ("slots"), each with its own KV stream of
``n_ctx`` cells (``kv_unified = false``: a sequence's attention never sees where other sequences' cells lie, so
its numbers - and its text, for a given seed - are the same whatever else runs; with one unified cache the cell
interleaving changed greedy answers after a few tokens). The decode thread loops over *steps*; each step:

1. takes commands from trio (new jobs, wake-ups) from a thread-safe queue, blocking only when nothing can run;
2. drops every cancelled job at once (its slots are free from this step on: <= one token interval after the
   cancel, prefill included, since a prompt is evaluated in chunks, one chunk per step). A step whose every
   sequence belongs to cancelled jobs is not waited for: the cancel sets llama.cpp's abort flag (`abort.py`),
   the decode stops within a graph node, and the step's positions are removed again, so a lone stream's
   slot is free at once instead of one step later;
3. admits waiting jobs in arrival order while ``n`` slots are idle (a job's prompt plus its token budget fits
   its slot's ``n_ctx`` cells, so a started sequence never runs out of room);
4. builds one batch: the next token of every decoding sequence, or - every other step while prompts wait -
   chunks of those prompts up to ``n_batch`` tokens (chunked prefill: a new prompt delays running streams by
   at most one chunk per token, and its first token comes right after its prefill; see `_plan`);
5. calls ``llama_decode`` once (should llama.cpp still find no room, the batch is split in halves, then the
   jobs in it fail with a 503: never a crash), and samples each sequence at its batch index with its own
   sampler chain (`sampling.py`).

Prefix cache: a finished slot keeps its tokens; a new job takes the idle slot sharing the longest prefix with
its prompt and evaluates only the rest (``usage.cached_tokens``). ``n > 1``: the first choice evaluates the
prompt, then ``llama_memory_seq_cp`` copies its stream to the other choices' slots, each of which samples its
first token from the same logits with its own chain (seed + choice index).

Output: every item for a job goes to trio through the job's ``deliver`` (``run_sync_soon`` into an unbounded
channel read by the request's task). A slow reader never stalls the others: when a job has ``OUTPUT_BOUND``
items not yet taken by its task, its sequences *pause* (they skip steps, keeping their KV) until the task
has caught up and wakes the engine. So at most ``OUTPUT_BOUND`` pieces buffer per request.

Everything mutable here belongs to the decode thread, except: ``Job.cancelled`` and ``Job.consumed`` (written by
trio, read here) and the slot fields `status` reads (single attribute reads under the GIL).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Internal, TrinferError, Unavailable
from ..types import SamplingParams, StopReason, TokenLogprob
from .abort import StepAbort
from .model import Model
from .routing import Mode, TextRouter
from .sampling import Chain, build_chain, logits_row, token_logprob

#: Items a job may have in flight towards its request task before its sequences pause.
OUTPUT_BOUND = 32


@dataclass(frozen=True, slots=True)
class Piece:
    """Streamed text of one choice (TEXT mode)."""

    choice: int
    text: str
    logprobs: tuple[TokenLogprob, ...] | None


@dataclass(frozen=True, slots=True)
class ChoiceDone:
    """One choice ended: why, how many tokens, and what was kept (WHOLE mode) with its records."""

    choice: int
    stop_reason: StopReason
    completion_tokens: int
    text: str
    is_call: bool
    logprobs: tuple[TokenLogprob, ...] | None


@dataclass(frozen=True, slots=True)
class JobDone:
    """The job left the engine (every choice ended, or it was cancelled): its slots are free."""

    prompt_tokens: int
    cached_tokens: int
    cancelled: bool


@dataclass(frozen=True, slots=True)
class JobFailed:
    """The job left the engine with an error (its slots are free)."""

    error: TrinferError


Item = Piece | ChoiceDone | JobDone | JobFailed


@dataclass(eq=False, slots=True)
class Job:
    """One request's generation. Built on the trio side; the engine owns it once submitted."""

    tokens: list[int]
    sampling: SamplingParams
    seed: int | None
    budget: int  # completion tokens per choice
    deliver: Callable[[Item], None]
    mode: Mode = Mode.TEXT
    grammar: str | None = None
    call_grammar: str | None = None
    grammar_param: str = "response_format"
    stops: tuple[tuple[str, StopReason], ...] = ()
    cancelled: bool = False  # trio -> engine
    consumed: int = 0  # trio: items taken
    produced: int = 0  # engine: items delivered
    paused: bool = False  # engine: skipped a step waiting for the reader
    cached: int = 0
    ended: int = 0
    forked: bool = False
    finished: bool = False
    seqs: list[_Seq] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.sampling.n


@dataclass(eq=False, slots=True)
class Slot:
    """One sequence id of the context and the tokens its KV cells hold (positions 0..len-1)."""

    index: int
    cache: list[int] = field(default_factory=list)
    seq: _Seq | None = None

    def status(self) -> dict[str, Any]:
        seq = self.seq
        if seq is None:
            return {"slot": self.index, "state": "idle", "cached": len(self.cache)}
        job = seq.job
        if seq.state == "decode":
            state = "paused" if job.paused else "decoding"
            return {"slot": self.index, "state": state, "tokens": seq.completion, "cached": job.cached}
        done = len(self.cache) if seq.state == "prefill" else 0
        return {
            "slot": self.index,
            "state": "prefill",
            "done": done,
            "total": len(job.tokens),
            "cached": job.cached,
        }


@dataclass(eq=False, slots=True)
class _Seq:
    job: Job
    choice: int
    slot: Slot
    chain: Chain
    router: TextRouter
    state: str = "prefill"  # prefill | fork (waiting for choice 0's prompt) | decode
    next_token: int = -1
    completion: int = 0
    restarted: bool = False
    alive: bool = True


@dataclass(slots=True)
class EngineCounters:
    """Totals shown on /admin/status; written by the decode thread only."""

    generations: int = 0
    tokens_decoded: int = 0
    prompt_batches: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    cancelled: int = 0
    steps: int = 0
    aborted_steps: int = 0
    kv_full: int = 0


_STOP = object()
_WAKE = object()


def _common_prefix(a: list[int], b: list[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


class Engine:
    """The decode thread and its slots (see the module docstring)."""

    def __init__(self, model: Model, parallel: int, n_batch: int) -> None:
        self.model = model
        self.lib = model.lib
        self.parallel = parallel
        self.n_batch = n_batch
        self.slots = [Slot(i) for i in range(parallel)]
        self.counters = EngineCounters()
        self.error: BaseException | None = None
        self._capacity = max(model.n_batch, parallel)
        self._commands: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending: deque[Job] = deque()
        self._running: list[_Seq] = []
        self._batch: Any = None
        self._closing = threading.Lock()
        self._closed = False
        self._abort = StepAbort(self.lib, model.ctx)
        self._flight = threading.Lock()  # guards `_in_flight` against the abort decision
        self._in_flight: tuple[Job, ...] = ()  # the jobs of the llama_decode call running now
        self._prefilled = False  # the last step was one of prompt chunks (`_plan` alternates)
        self._thread = threading.Thread(target=self._main, name="llamacpp-decode", daemon=True)

    # --- trio side ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._batch = self.lib.llama_batch_init(self._capacity, 0, 1)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job``; `Unavailable` once the thread has ended (it answers every job it accepted once)."""
        with self._closing:
            if self._closed:
                raise Unavailable("the llamacpp backend is stopping", code="backend_unavailable", status=503)
            self._commands.put(job)

    def wake(self) -> None:
        self._commands.put(_WAKE)

    def cancel(self, job: Job) -> None:
        """Drop ``job`` at the next step; abandon the step in flight when it works for cancelled jobs only."""
        job.cancelled = True
        with self._flight:
            if self._in_flight and all(j.cancelled for j in self._in_flight):
                self._abort.set()
        self.wake()

    def stop(self) -> None:
        """Ask the thread to fail every job (503) and free the model, abandoning the step in flight; `join`
        waits for it."""
        self._commands.put(_STOP)
        with self._flight:
            if self._in_flight:
                self._abort.set()

    def join(self, timeout: float) -> bool:
        """Blocking: wait up to ``timeout`` for the thread to end; True when it has."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def slot_status(self) -> list[dict[str, Any]]:
        return [slot.status() for slot in self.slots]

    # --- the decode thread ----------------------------------------------------------------------------------

    def _main(self) -> None:
        stop_error: TrinferError = Unavailable(
            "the llamacpp backend is stopping", code="backend_unavailable", status=503
        )
        try:
            idle = True
            while self._take_commands(block=idle):
                self._reap()
                self._admit()
                entries = self._plan()
                idle = not entries
                if entries:
                    self.counters.steps += 1
                    self._decode(entries)
        except BaseException as exc:  # a bug or llama.cpp failure: every job fails, the backend reports it
            self.error = exc
            stop_error = Internal(f"the llamacpp decode loop failed: {type(exc).__name__}: {exc}")
        finally:
            with self._closing:
                self._closed = True
            while not self._commands.empty():
                self._take_commands(block=False)  # jobs queued behind the stop
            for job in [*self._pending, *{seq.job: None for seq in self._running}]:
                self._end(job, error=stop_error)
            self._pending.clear()
            self.lib.llama_batch_free(self._batch)
            self.model.close()

    def _take_commands(self, *, block: bool) -> bool:
        """Move queued commands into the engine; False on stop."""
        stop = False
        try:
            item = self._commands.get() if block else self._commands.get_nowait()
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, Job):
                    self._pending.append(item)
                item = self._commands.get_nowait()
        except queue.Empty:
            return not stop

    def _reap(self) -> None:
        for job in [j for j in self._pending if j.cancelled]:
            self._pending.remove(job)
            self._end(job, cancelled=True)
        for job in {seq.job: None for seq in self._running if seq.job.cancelled}:
            self._end(job, cancelled=True)

    # --- admission ------------------------------------------------------------------------------------------

    def _admit(self) -> None:
        """Start waiting jobs in arrival order while there are enough idle slots for their ``n`` choices.

        Each slot is its own KV stream of ``n_ctx`` cells and a job's prompt plus budget fits ``n_ctx``
        (`requests.prepare`), so a started sequence can never run out of cells."""
        while self._pending:
            job = self._pending[0]
            idle = [slot for slot in self.slots if slot.seq is None]
            if len(idle) < job.n:
                return
            prefix = {slot.index: _common_prefix(slot.cache, job.tokens) for slot in idle}
            # Ties go to the lowest slot index, and forks take the lowest idle ones: running sequences on
            # consecutive seq ids share one llama.cpp micro-batch (see `_plan`).
            leader = max(idle, key=lambda s: (prefix[s.index], -s.index))
            forks = [s for s in idle if s is not leader][: job.n - 1]
            self._pending.popleft()
            self._start(job, leader, forks, min(prefix[leader.index], len(job.tokens) - 1))

    def _clear(self, slot: Slot) -> None:
        self.lib.llama_memory_seq_rm(self.model.memory, slot.index, -1, -1)
        slot.cache = []

    def _start(self, job: Job, leader: Slot, forks: list[Slot], common: int) -> None:
        if common < len(leader.cache):
            if not self.lib.llama_memory_seq_rm(self.model.memory, leader.index, common, -1):
                self._clear(leader)  # a model whose memory cannot drop a tail (recurrent): start over
                common = 0
            leader.cache = leader.cache[:common]
        for slot in forks:
            self._clear(slot)
        job.cached = common
        self.counters.generations += 1
        self.counters.prompt_tokens += len(job.tokens)
        self.counters.cached_tokens += common
        for choice, slot in enumerate([leader, *forks]):
            seq = _Seq(job, choice, slot, self._chain(job, job.grammar, choice), self._router(job, choice))
            seq.state = "prefill" if choice == 0 else "fork"
            slot.seq = seq
            job.seqs.append(seq)
            self._running.append(seq)

    def _chain(self, job: Job, grammar: str | None, choice: int) -> Chain:
        """Choice k samples with seed + k: the choices differ, and the same seed gives the same n texts."""
        model, seed = self.model, job.seed
        seed = seed + choice if seed is not None else None
        return build_chain(self.lib, model.vocab, model.n_vocab, job.sampling, seed, grammar, job.grammar_param)

    def _router(self, job: Job, choice: int) -> TextRouter:
        def emit(text: str, records: tuple[TokenLogprob, ...] | None) -> None:
            self._deliver(job, Piece(choice, text, records))

        return TextRouter(job.mode, job.stops, emit, job.sampling.top_logprobs is not None)

    # --- one step -------------------------------------------------------------------------------------------

    def _plan(self) -> list[tuple[_Seq, list[int], int, bool]]:
        """This step's batch: (sequence, tokens, first position, logits wanted for the last token), in slot order.

        With one KV stream per sequence, llama.cpp splits a batch into micro-batches of sequences with
        *consecutive, increasing* seq ids (``split_equal(sequential=True)``), one forward pass each: 4 decode
        tokens of slots 0-3 cost one pass, the same tokens in the order 1, 0, 2, 3 two passes, and 8 tokens in
        reverse order eight. So the entries go in slot order (and `_admit` keeps the busy slots low).

        For the same reason a prompt chunk never shares a pass with decode tokens (only its first token would),
        so mixing them in one call saves nothing and makes a new request wait for the running streams' pass
        before it sees its first token. Steps therefore alternate while prompts are waiting: one step of
        prompt chunks (up to ``n_batch`` tokens each, the batch's capacity in all), then one step of decode
        tokens. A running stream still gets a token every chunk + step, and a new request's first token comes
        right after its prefill."""
        decode: list[tuple[_Seq, list[int], int, bool]] = []
        for seq in self._running:
            if seq.state != "decode":
                continue
            job = seq.job
            job.paused = job.produced - job.consumed >= OUTPUT_BOUND
            if not job.paused:
                decode.append((seq, [seq.next_token], len(seq.slot.cache), True))
        prefill: list[tuple[_Seq, list[int], int, bool]] = []
        room = self._capacity
        for seq in self._running:
            if seq.state != "prefill" or room <= 0:
                continue
            done, tokens = len(seq.slot.cache), seq.job.tokens
            take = min(room, len(tokens) - done, self.n_batch)
            prefill.append((seq, tokens[done : done + take], done, done + take == len(tokens)))
            room -= take
        self._prefilled = bool(prefill) and not (decode and self._prefilled)
        entries = prefill if self._prefilled else decode
        entries.sort(key=lambda entry: entry[0].slot.index)
        return entries

    def _decode(self, entries: list[tuple[_Seq, list[int], int, bool]]) -> None:
        lib, batch = self.lib, self._batch
        count = 0
        for seq, tokens, first, want in entries:
            for offset, token in enumerate(tokens):
                batch.token[count] = token
                batch.pos[count] = first + offset
                batch.n_seq_id[count] = 1
                batch.seq_id[count][0] = seq.slot.index
                batch.logits[count] = want and offset == len(tokens) - 1
                count += 1
        batch.n_tokens = count
        jobs = tuple({seq.job: None for seq, _, _, _ in entries})
        with self._flight:
            self._in_flight = jobs
            if all(job.cancelled for job in jobs):  # cancelled since `_reap`
                self._abort.set()
        result = lib.llama_decode(self.model.ctx, batch)
        with self._flight:
            self._in_flight = ()
            aborted = self._abort.is_set
            self._abort.clear()
        if result == 0:
            self._after(entries)
            return
        if result == 2 and aborted:  # abandoned (see `cancel`, `stop`): back to the cells before this step
            self.counters.aborted_steps += 1
            for seq, _, first, _ in entries:
                if not lib.llama_memory_seq_rm(self.model.memory, seq.slot.index, first, -1):
                    self._clear(seq.slot)
            return
        if result == 1:  # no room in the KV cache (admission should prevent it): split the batch, then fail
            self.counters.kv_full += 1
            halves = _halves(entries)
            if halves is not None:
                for half in halves:
                    self._decode([e for e in half if e[0].alive])
                return
            error = Unavailable("the model's KV cache is full; try again", code="backend_unavailable", status=503)
        else:
            error = Unavailable(
                f"llama.cpp failed while generating (llama_decode returned {result})", code="backend_unavailable"
            )
        for job in {seq.job: None for seq, _, _, _ in entries}:
            self._end(job, error=error)

    def _after(self, entries: list[tuple[_Seq, list[int], int, bool]]) -> None:
        index = 0
        for seq, tokens, _, want in entries:
            index += len(tokens)
            if not seq.alive:
                continue
            seq.slot.cache.extend(tokens)
            if seq.state == "prefill":
                self.counters.prompt_batches += 1
                if not want:
                    continue
                seq.state = "decode"
                job = seq.job
                if seq.choice == 0 and not job.forked:
                    job.forked = True
                    for fork in job.seqs[1:]:
                        self.lib.llama_memory_seq_cp(self.model.memory, seq.slot.index, fork.slot.index, -1, -1)
                        fork.slot.cache = list(seq.slot.cache)
                        fork.state = "decode"
                        self._sample(fork, index - 1)
            self._sample(seq, index - 1)

    def _sample(self, seq: _Seq, index: int) -> None:
        job, model = seq.job, self.model
        token = seq.chain.sample(model.ctx, index)
        self.counters.tokens_decoded += 1
        record = None
        if job.sampling.top_logprobs is not None:
            row = logits_row(self.lib, model.ctx, index, model.n_vocab)
            record = token_logprob(row, token, job.sampling.top_logprobs, model.piece)
        if model.is_eog(token):
            self._finish(seq, StopReason.END, end_of_turn=True)
            return
        seq.completion += 1
        stopped, restart = seq.router.feed(model.piece(token), record)
        if restart:
            self._restart(seq)
        elif stopped is not None:
            seq.router.settle()
            self._finish(seq, stopped)
        elif seq.completion >= job.budget:
            if seq.router.finish():
                seq.router.settle()
            self._finish(seq, StopReason.MAX_TOKENS)
        else:
            seq.next_token = token

    def _restart(self, seq: _Seq) -> None:
        """AUTO saw a call: regenerate from the prompt under the call grammar (the tokens spent still count)."""
        job = seq.job
        seq.restarted = True
        seq.router.restart(Mode.WHOLE)
        seq.chain.free()
        seq.chain = self._chain(job, job.call_grammar, seq.choice)
        keep = len(job.tokens) - 1  # the last prompt token is evaluated again, for its logits
        if self.lib.llama_memory_seq_rm(self.model.memory, seq.slot.index, keep, -1):
            seq.slot.cache = seq.slot.cache[:keep]
        else:
            self._clear(seq.slot)
        seq.state = "prefill"

    # --- endings --------------------------------------------------------------------------------------------

    def _deliver(self, job: Job, item: Item) -> None:
        job.produced += 1
        job.deliver(item)

    def _release(self, seq: _Seq) -> None:
        seq.alive = False
        seq.chain.free()
        seq.slot.seq = None
        self._running.remove(seq)

    def _finish(self, seq: _Seq, reason: StopReason, *, end_of_turn: bool = False) -> None:
        if end_of_turn and seq.router.finish():
            self._restart(seq)
            return
        self._release(seq)
        job, router = seq.job, seq.router
        records = tuple(router.kept_records) if job.sampling.top_logprobs is not None else None
        done = ChoiceDone(seq.choice, reason, seq.completion, "".join(router.kept), seq.restarted, records)
        self._deliver(job, done)
        job.ended += 1
        if job.ended == job.n:
            self._end(job)

    def _end(self, job: Job, *, cancelled: bool = False, error: TrinferError | None = None) -> None:
        """The job leaves the engine: its remaining sequences are dropped and trio hears of it once."""
        if job.finished:
            return
        job.finished = True
        for seq in list(job.seqs):
            if seq.alive:
                self._release(seq)
        if cancelled:
            self.counters.cancelled += 1
        if error is not None:
            self._deliver(job, JobFailed(error))
        else:
            self._deliver(job, JobDone(len(job.tokens), job.cached, cancelled))


def _halves(
    entries: list[tuple[_Seq, list[int], int, bool]],
) -> list[list[tuple[_Seq, list[int], int, bool]]] | None:
    """The batch split in two (by entries, or one prompt chunk by tokens); None for a single token."""
    if len(entries) > 1:
        middle = len(entries) // 2
        return [entries[:middle], entries[middle:]]
    seq, tokens, first, want = entries[0]
    if len(tokens) < 2:
        return None
    middle = len(tokens) // 2
    return [[(seq, tokens[:middle], first, False)], [(seq, tokens[middle:], first + middle, want)]]

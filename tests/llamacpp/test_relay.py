"""`requests.relay`, the trio end of a job, against bursts from a real thread: every piece reaches the consumer,
in order, whether it went straight into the consumer's channel (``offer``) or waited in the relay.

The decode thread delivers one item per token, far apart, so an item overtaking another is a narrow race on
the real model; here a thread plays the engine and delivers in bursts, which opens that window on every burst.
The engine stand-in does only what the relay asks of the engine: take the job, note a cancel, take a wake-up.
"""

from __future__ import annotations

import threading
import time

import trio

from adapters.llamacpp.engine import ChoiceDone, Job, JobDone, Piece
from adapters.llamacpp.requests import Outcome, relay
from adapters.types import SamplingParams, StopReason

PIECES = 600


class BurstEngine:
    """Delivers a job's items from its own thread, in bursts of ``burst`` without a pause."""

    def __init__(self, burst: int) -> None:
        self.burst = burst
        self.thread: threading.Thread | None = None
        self.cancelled = False
        self.wakes = 0

    def submit(self, job: Job) -> None:
        self.thread = threading.Thread(target=self._run, args=(job,))
        self.thread.start()

    def _run(self, job: Job) -> None:
        for start in range(0, PIECES, self.burst):
            for i in range(start, min(start + self.burst, PIECES)):
                job.deliver(Piece(0, f"{i},", None))
            time.sleep(0)  # between bursts: give the GIL to the event loop
        job.deliver(ChoiceDone(0, StopReason.MAX_TOKENS, PIECES, "", False, None))
        job.deliver(JobDone(3, 0, False))

    def cancel(self, job: Job) -> None:
        self.cancelled = True

    def wake(self) -> None:
        self.wakes += 1


def _job() -> Job:
    return Job(tokens=[1, 2, 3], sampling=SamplingParams(), seed=None, budget=PIECES, deliver=print)


async def _relay_into(buffer: int, engine: BurstEngine, *, lag_every: int) -> tuple[list[str], Outcome]:
    """Relay a job into a channel of ``buffer`` read by a consumer that yields a few times every ``lag_every``
    pieces (so the channel fills, the relay queues, and the offers resume once it has drained)."""
    send, receive = trio.open_memory_channel[Piece](buffer)
    got: list[str] = []

    def offer(piece: Piece) -> bool:
        try:
            send.send_nowait(piece)
        except trio.WouldBlock:
            return False
        return True

    async def consume() -> None:
        async for piece in receive:
            got.append(piece.text)
            if len(got) % lag_every == 0:
                for _ in range(5):
                    await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        async with send:
            outcome = await relay(engine, _job(), send.send, offer)  # type: ignore[arg-type]
    assert engine.thread is not None
    engine.thread.join()
    return got, outcome


async def test_pieces_keep_their_order_through_offers_and_the_relays_queue() -> None:
    with trio.fail_after(60):
        for buffer, burst, lag_every in ((4, 7, 3), (1, 3, 2), (8, 20, 5)) * 5:
            engine = BurstEngine(burst)
            got, outcome = await _relay_into(buffer, engine, lag_every=lag_every)
            assert got == [f"{i}," for i in range(PIECES)]
            assert outcome.choices[0].completion_tokens == PIECES
            assert not engine.cancelled


async def test_without_offer_every_piece_goes_through_the_relay_in_order() -> None:
    engine = BurstEngine(5)
    send, receive = trio.open_memory_channel[Piece](2)
    got: list[str] = []

    async def consume() -> None:
        async for piece in receive:
            got.append(piece.text)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            async with send:
                await relay(engine, _job(), send.send)  # type: ignore[arg-type]
    assert engine.thread is not None
    engine.thread.join()
    assert got == [f"{i}," for i in range(PIECES)]

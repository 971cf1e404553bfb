"""The hand-off of text from the decode thread to trio (issue 7): the thread runs at most `HANDOFF_CREDITS`
pieces ahead of the consumer without waiting for the event loop, then blocks until the consumer reads on - so a
reader that stops reading stops decoding - and nothing is lost, reordered or sent after `Done`."""

from __future__ import annotations

from collections.abc import Callable

import outcome
import pytest
import trio

from adapters.errors import Unavailable
from adapters.llamacpp import LlamaCppBackend
from adapters.llamacpp.backend import HANDOFF_CREDITS
from adapters.stream import open_event_stream
from adapters.types import Event, Message, Resolved, Role, SamplingParams, Token

from ..adapters.conformance import run_to_end, split_done, text_of

pytestmark = pytest.mark.llama

EOS = 2
#: Greedy, and unable to end by itself before ``max_tokens`` (the end-of-turn token is banned).
LONG = SamplingParams(temperature=0.0, max_tokens=3 * HANDOFF_CREDITS, logit_bias=((EOS, -100.0),))
ENDLESS = SamplingParams(temperature=0.0, max_tokens=400, logit_bias=((EOS, -100.0),))


def story(sampling: SamplingParams) -> Resolved:
    return Resolved("smollm2", (Message(Role.USER, "Tell me a very long story."),), sampling)


def status_int(backend: LlamaCppBackend, key: str) -> int:
    value = backend.status()[key]
    assert isinstance(value, int)
    return value


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (state changed by a worker thread, which cannot wake a trio task) until it holds."""
    for _ in range(10_000):
        if condition():
            return
        await trio.sleep(0.002)
    raise AssertionError("condition never held")


async def test_a_reader_that_stops_reading_blocks_the_thread_and_loses_nothing(backend: LlamaCppBackend) -> None:
    """The consumer reads 3 tokens and stops. The thread hands off `HANDOFF_CREDITS` more pieces, decodes one
    more token and waits; while the consumer waits, nothing more is decoded. When it reads on, it gets the same
    text, in the same order, as a consumer that never paused, and one `Done`, last."""
    expected, expected_done = split_done(await run_to_end(lambda send: backend.generate(story(LONG), send)))
    decoded_before = status_int(backend, "tokens_decoded")
    received: list[Event] = []
    with trio.fail_after(60):
        async with open_event_stream(lambda send: backend.generate(story(LONG), send), buffer=0) as events:
            for _ in range(3):
                received.append(await events.__anext__())
            await wait_until(lambda: status_int(backend, "waiting_for_reader") == 1)
            blocked_at = status_int(backend, "tokens_decoded") - decoded_before
            # Every hand-off holds a credit until the consumer takes it; the token after the last one waits.
            assert blocked_at == len(received) + HANDOFF_CREDITS + 1
            for _ in range(20):  # the consumer keeps waiting: the thread stays where it is
                await trio.sleep(0.01)
                assert status_int(backend, "tokens_decoded") - decoded_before == blocked_at
                assert status_int(backend, "waiting_for_reader") == 1
            received += [event async for event in events]
    content, done = split_done(received)
    assert all(isinstance(event, Token) for event in content)
    assert text_of(content) == text_of(expected)
    assert done == expected_done
    assert status_int(backend, "waiting_for_reader") == 0
    assert status_int(backend, "threads_running") == 0


async def test_cancel_while_the_thread_waits_for_the_reader(backend: LlamaCppBackend) -> None:
    """A generation whose thread is blocked on a reader that stopped reading is cancelled: the thread returns
    without decoding another token, before the stream's block exits, and the cancel is counted."""
    cancelled_before = status_int(backend, "cancelled")
    with trio.fail_after(60), trio.CancelScope() as scope:
        async with open_event_stream(lambda send: backend.generate(story(ENDLESS), send), buffer=0) as events:
            await events.__anext__()
            await wait_until(lambda: status_int(backend, "waiting_for_reader") == 1)
            at_cancel = status_int(backend, "tokens_decoded")
            scope.cancel()
            await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert events.producer_done.is_set()
    assert status_int(backend, "threads_running") == 0, "the worker thread outlived the producer"
    assert status_int(backend, "tokens_decoded") == at_cancel
    assert status_int(backend, "waiting_for_reader") == 0
    assert status_int(backend, "cancelled") == cancelled_before + 1


async def test_stop_while_the_thread_waits_for_the_reader(backend: LlamaCppBackend) -> None:
    """`stop` ends a generation blocked on a reader: the generation fails with backend_unavailable once the
    thread has returned, and the model is released."""
    send, receive = trio.open_memory_channel[Event](0)
    with trio.fail_after(60), send, receive:
        async with trio.open_nursery() as nursery:

            async def produce() -> None:
                finished.append(await outcome.acapture(backend.generate, story(ENDLESS), send))

            finished: list[outcome.Outcome[None]] = []
            nursery.start_soon(produce)
            await receive.receive()
            await wait_until(lambda: status_int(backend, "waiting_for_reader") == 1)
            await backend.stop(10)
    assert backend.status()["state"] == "stopped"
    assert status_int(backend, "threads_running") == 0
    with pytest.raises(Unavailable) as caught:
        finished[0].unwrap()
    assert caught.value.code == "backend_unavailable"


async def test_a_reader_that_closes_its_end_ends_the_generation(backend: LlamaCppBackend) -> None:
    """The consumer closes its receiving end mid-stream: the generation raises `BrokenResourceError` (as a send
    into a closed channel does) after its thread has returned, well before the generation would have ended."""
    send, receive = trio.open_memory_channel[Event](0)
    with trio.fail_after(60), send:
        async with trio.open_nursery() as nursery:

            async def produce() -> None:
                finished.append(await outcome.acapture(backend.generate, story(ENDLESS), send))

            finished: list[outcome.Outcome[None]] = []
            nursery.start_soon(produce)
            first = await receive.receive()
            receive.close()
    assert isinstance(first, Token)
    assert status_int(backend, "threads_running") == 0
    assert status_int(backend, "tokens_decoded") < 400, "decoding went on after the reader left"
    with pytest.raises(trio.BrokenResourceError):
        finished[0].unwrap()

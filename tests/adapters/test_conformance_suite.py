"""The conformance suite catches what it claims to: each check fails against a backend that breaks its rule.

The broken backends are the mock with one behaviour changed, so every other rule still holds and the failure
can only come from the rule under test. A text-only backend (the ABC's defaults) passes every check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jsonschema
import pytest
import trio
import trio.testing

from adapters import (
    BackendCapabilities,
    Done,
    Event,
    Message,
    Resolved,
    ResolvedV2,
    Role,
    SamplingParams,
    StopReason,
    Token,
    ToolUse,
    Unsupported,
    Usage,
)
from adapters.backend import Backend
from adapters.mock import MockBackend, count_words
from adapters.types import ChoiceEnd, Text, TokenLogprob

from . import conformance as suite


class ExtraDone(MockBackend):
    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        await super().generate(req, send)
        await send.send(Done(StopReason.END, Usage(1, 0)))


class OverCountsUsage(MockBackend):
    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        send_inner, receive = trio.open_memory_channel[Event](1000)
        await super().generate(req, send_inner)
        for event in [receive.receive_nowait() for _ in range(receive.statistics().current_buffer_used)]:
            if isinstance(event, Done):
                event = Done(
                    event.stop_reason, Usage(event.usage.prompt_tokens, event.usage.completion_tokens + 1)
                )
            await send.send(event)


class IgnoresMaxTokens(MockBackend):
    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        sampling = dataclasses.replace(req.sampling, max_tokens=None)
        await super().generate(dataclasses.replace(req, sampling=sampling), send)


class IgnoresStopSequences(MockBackend):
    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        await super().generate(dataclasses.replace(req, sampling=SamplingParams()), send)


class ShieldsGeneration(MockBackend):
    """Ignores the consumer's cancel: keeps generating until its send fails."""

    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        with trio.CancelScope(shield=True):
            await super().generate(req, send)


class SharesStateBetweenRequests(MockBackend):
    """Echoes whichever prompt arrived last: fine alone, wrong under concurrency."""

    latest = ""

    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        self.latest = req.messages[-1].content
        await trio.sleep(0.1)
        await super().generate(
            dataclasses.replace(req, messages=(*req.messages[:-1], Message(Role.USER, self.latest))), send
        )


class ClaimsEmbeddings(MockBackend):
    def capabilities(self) -> BackendCapabilities:
        return dataclasses.replace(super().capabilities(), embed=True)


class AlwaysReady(MockBackend):
    def ready(self) -> bool:
        return True


class ToolsWithoutCapability(MockBackend):
    """Says it has no tools, yet answers requests that offer them."""

    def capabilities(self) -> BackendCapabilities:
        return dataclasses.replace(super().capabilities(), tools=False)


class RawPromptWithoutCapability(MockBackend):
    """Says it takes no raw prompts, yet answers them."""

    def capabilities(self) -> BackendCapabilities:
        return dataclasses.replace(super().capabilities(), raw_prompt=False)


class MislabelsChoices(MockBackend):
    """Says it generates choices and log probabilities, yet tags everything choice 0 and its tokens do not
    spell its text."""

    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Text("hello", 0, (TokenLogprob("help", -0.5),)))
        await send.send(Done(StopReason.END, Usage(1, 1), choices=(ChoiceEnd(0, StopReason.END),)))


class BadToolArguments(MockBackend):
    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        await send.send(ToolUse(id="call_1", name=req.tools[0].name, arguments='{"city": 3}'))
        await send.send(Done(StopReason.TOOL_USE, Usage(1, 1)))


class Hangs(MockBackend):
    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Token("stuck"))
        await trio.sleep_forever()


PROFILE = suite.ConformanceProfile(
    model="mock-echo",
    prompts=suite.ECHO_PROMPTS,
    exact_usage=True,
    prompt_tokens=count_words,
    expected_reply=lambda prompt: prompt,
    deterministic=True,
    cancelled_generations=suite.status_counter("cancelled"),
    timeout_s=30,
)


def with_factory(cls: type[MockBackend], options: Mapping[str, Any]) -> suite.ConformanceProfile:
    return dataclasses.replace(PROFILE, make_unbooted=lambda: cls.from_options(options))


@pytest.mark.parametrize(
    ("cls", "check", "error", "match"),
    [
        (ExtraDone, suite.check_v1_stream, AssertionError, "exactly one Done"),
        (OverCountsUsage, suite.check_v1_stream, AssertionError, "completion_tokens"),
        (IgnoresMaxTokens, suite.check_max_tokens, AssertionError, "MAX_TOKENS"),
        (IgnoresStopSequences, suite.check_stop_sequence, AssertionError, "STOP_SEQUENCE"),
        (ShieldsGeneration, suite.check_cancel_mid_stream, AssertionError, "trio.Cancelled"),
        (SharesStateBetweenRequests, suite.check_concurrent_generations, AssertionError, None),
        (ClaimsEmbeddings, suite.check_embed_matches_capability, Unsupported, None),
        (AlwaysReady, suite.check_not_ready_outside_lifetime, AssertionError, "ready"),
        (ToolsWithoutCapability, suite.check_v2_tool_choice, pytest.fail.Exception, "DID NOT RAISE"),
        (BadToolArguments, suite.check_v2_tool_choice, jsonschema.ValidationError, None),
        (RawPromptWithoutCapability, suite.check_raw_prompt_matches_capability, pytest.fail.Exception, "DID NOT"),
        (MislabelsChoices, suite.check_choices_and_logprobs_match_capability, AssertionError, "Done.choices"),
        (Hangs, suite.check_v1_stream, trio.TooSlowError, None),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
async def test_check_fails_against_a_backend_breaking_its_rule(
    cls: type[MockBackend],
    check: suite.Check,
    error: type[BaseException],
    match: str | None,
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = cls.from_options({})
    await backend.boot()
    with pytest.raises(error, match=match):
        await check(backend, with_factory(cls, {}))


class TextOnly(MockBackend):
    """A v1-only backend: the ABC's default capabilities and generate_v2."""

    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities()

    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        await Backend.generate_v2(self, req, send)


@pytest.mark.parametrize("check", suite.checks_for(with_factory(TextOnly, {})))
async def test_text_only_backend_passes_every_check(check: suite.Check) -> None:
    backend = TextOnly.from_options({})
    await backend.boot()
    await check(backend, with_factory(TextOnly, {}))


def test_checks_for_leaves_out_what_the_profile_cannot_support() -> None:
    def names(params: list[Any]) -> set[str]:
        return {param.id for param in params}

    everything = names(suite.CHECKS)
    assert names(suite.checks_for(with_factory(MockBackend, {}))) == everything
    minimal = dataclasses.replace(PROFILE, deterministic=False, make_unbooted=None)
    assert names(suite.checks_for(minimal)) == everything - {
        "check_stop_sequence",
        "check_not_ready_outside_lifetime",
    }


async def test_lifetime_check_needs_a_factory() -> None:
    backend = MockBackend.from_options({})
    await backend.boot()
    with pytest.raises(AssertionError, match="make_unbooted"):
        await suite.check_not_ready_outside_lifetime(backend, PROFILE)

"""Sampling, usage and context limits of the llamacpp backend, observed on the real SmolLM2 model."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import trio

from adapters.errors import InvalidRequest
from adapters.llamacpp import LlamaCppBackend
from adapters.types import Done, Message, Resolved, Role, SamplingParams, StopReason, Token

from ..adapters.conformance import run_to_end, split_done, text_of

pytestmark = pytest.mark.llama

EOS = 2  # SmolLM2's <|im_end|>: banning it (logit_bias -100) makes the model unable to stop on its own
NO_EOS = ((EOS, -100.0),)


def chat(text: str, **sampling: object) -> Resolved:
    return Resolved(model="smollm2", messages=(Message(Role.USER, text),), sampling=SamplingParams(**sampling))  # type: ignore[arg-type]


async def answer(backend: LlamaCppBackend, req: Resolved) -> tuple[str, Done]:
    with trio.fail_after(60):
        content, done = split_done(await run_to_end(lambda send: backend.generate(req, send)))
    assert all(isinstance(event, Token) for event in content)
    return text_of(content), done


async def test_usage_counts_the_prompt_as_llama_cpp_python_does(
    backend: LlamaCppBackend, chat_model_path: Path
) -> None:
    """prompt_tokens equals llama-cpp-python's own count for the same messages through the GGUF template."""
    import llama_cpp

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a comet?"}]
    reference = llama_cpp.Llama(model_path=str(chat_model_path), n_ctx=256, n_threads=1, verbose=False)
    try:
        expected = reference.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0)["usage"]
    finally:
        reference.close()
    req = Resolved("smollm2", (Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "What is a comet?")),
                   SamplingParams(temperature=0.0, max_tokens=1))  # fmt: skip
    _, done = await answer(backend, req)
    assert done.usage.prompt_tokens == expected["prompt_tokens"]


async def test_max_tokens_ends_with_length_after_exactly_that_many_tokens(backend: LlamaCppBackend) -> None:
    text, done = await answer(backend, chat("Tell me a story.", temperature=0.0, max_tokens=7, logit_bias=NO_EOS))
    assert done.stop_reason is StopReason.MAX_TOKENS
    assert done.usage.completion_tokens == 7
    assert text


async def test_an_answer_that_ends_by_itself_reports_end(backend: LlamaCppBackend) -> None:
    text, done = await answer(backend, chat("Say hi.", temperature=0.0, max_tokens=200))
    assert done.stop_reason is StopReason.END
    assert 0 < done.usage.completion_tokens < 200
    assert "<|im_end|>" not in text


async def test_the_last_free_context_slot_is_usable_and_one_more_prompt_token_is_refused(
    small_context_backend: LlamaCppBackend,
) -> None:
    """n_ctx = 256. A prompt of 255 tokens gets exactly one token ("length"); 256 tokens is a 400 before any
    event: context_length_exceeded on ``messages``, never a silently truncated prompt."""
    backend = small_context_backend
    _, probe = await answer(backend, chat("a", temperature=0.0, max_tokens=1))
    overhead = probe.usage.prompt_tokens - 1  # the template's tokens; each extra " a" is one more token
    words = 255 - overhead
    fits = chat(" ".join(["a"] * words), temperature=0.0, max_tokens=50, logit_bias=NO_EOS)
    _, done = await answer(backend, fits)
    assert done.usage.prompt_tokens == 255
    assert (done.stop_reason, done.usage.completion_tokens) == (StopReason.MAX_TOKENS, 1)

    too_long = chat(" ".join(["a"] * (words + 1)), temperature=0.0, max_tokens=1)
    with trio.fail_after(60), pytest.raises(InvalidRequest) as raised:
        await run_to_end(lambda send: backend.generate(too_long, send))
    assert raised.value.code == "context_length_exceeded"
    assert raised.value.param == "messages"
    assert raised.value.http_status == 400
    assert "256" in raised.value.message


LONG_PROMPT = " ".join(["a"] * 200)  # leaves ~25 tokens of a 256-token context, so filling it is quick


async def test_max_tokens_beyond_the_context_is_capped_at_the_context(
    small_context_backend: LlamaCppBackend,
) -> None:
    req = chat(LONG_PROMPT, temperature=0.0, max_tokens=5000, logit_bias=NO_EOS)
    _, done = await answer(small_context_backend, req)
    assert done.stop_reason is StopReason.MAX_TOKENS
    assert done.usage.total_tokens == 256


async def test_without_max_tokens_an_answer_may_fill_the_rest_of_the_context(
    small_context_backend: LlamaCppBackend,
) -> None:
    _, done = await answer(small_context_backend, chat(LONG_PROMPT, temperature=0.0, logit_bias=NO_EOS))
    assert done.stop_reason is StopReason.MAX_TOKENS
    assert done.usage.total_tokens == 256


async def test_the_same_seed_gives_the_same_sampled_answer_and_another_seed_another(
    backend: LlamaCppBackend,
) -> None:
    prompt = "Invent a name for a new planet and describe it."
    first, _ = await answer(backend, chat(prompt, temperature=1.2, max_tokens=16, seed=123, logit_bias=NO_EOS))
    again, _ = await answer(backend, chat(prompt, temperature=1.2, max_tokens=16, seed=123, logit_bias=NO_EOS))
    other, _ = await answer(backend, chat(prompt, temperature=1.2, max_tokens=16, seed=124, logit_bias=NO_EOS))
    assert first == again
    assert other != first


@pytest.mark.parametrize("seed", [-1, 2**32 - 1, -(2**63), 2**63 - 1])
async def test_every_int64_seed_is_repeatable(backend: LlamaCppBackend, seed: int) -> None:
    """llama.cpp treats 0xFFFFFFFF as "random": seeds that would reach it (-1, 2**32 - 1) are mapped away."""
    prompt = "Invent a name for a new planet and describe it."
    first, _ = await answer(backend, chat(prompt, temperature=1.2, max_tokens=16, seed=seed, logit_bias=NO_EOS))
    again, _ = await answer(backend, chat(prompt, temperature=1.2, max_tokens=16, seed=seed, logit_bias=NO_EOS))
    assert first == again


@pytest.mark.parametrize(("seed", "same_as"), [(2**32, 1), (2**40, 256), (-1, 2**32 - 2), (2**32 - 1, 0)])
async def test_seeds_beyond_32_bits_map_as_documented(backend: LlamaCppBackend, seed: int, same_as: int) -> None:
    """seed % 0xFFFFFFFF (docs/llamacpp.md): 2**32 samples like 1 and 2**40 like 256, not like their low bits."""
    prompt = "Invent a name for a new planet and describe it."
    mapped, _ = await answer(backend, chat(prompt, temperature=1.2, max_tokens=16, seed=seed, logit_bias=NO_EOS))
    expected, _ = await answer(
        backend, chat(prompt, temperature=1.2, max_tokens=16, seed=same_as, logit_bias=NO_EOS)
    )
    low_bits, _ = await answer(
        backend, chat(prompt, temperature=1.2, max_tokens=16, seed=seed & 0xFFFFFFFF, logit_bias=NO_EOS)
    )
    assert mapped == expected
    if seed & 0xFFFFFFFF != same_as and seed & 0xFFFFFFFF != 0xFFFFFFFF:
        assert mapped != low_bits


@pytest.mark.parametrize(
    "narrowing", [{"top_k": 1}, {"top_p": 1e-6}, {"min_p": 1.0}], ids=["top_k", "top_p", "min_p"]
)
async def test_each_truncation_knob_narrowed_to_one_candidate_samples_the_greedy_answer(
    backend: LlamaCppBackend, narrowing: dict[str, float]
) -> None:
    """At temperature 1.5 the answer is random, unless top_k/top_p/min_p leave only the most likely token."""
    prompt = "Describe the moon in two sentences."
    greedy, _ = await answer(backend, chat(prompt, temperature=0.0, max_tokens=16))
    narrowed, _ = await answer(backend, chat(prompt, temperature=1.5, max_tokens=16, seed=5, **narrowing))
    wide, _ = await answer(backend, chat(prompt, temperature=1.5, max_tokens=16, seed=5))
    assert narrowed == greedy
    assert wide != greedy


async def test_logit_bias_plus_100_forces_a_token(backend: LlamaCppBackend) -> None:
    import llama_cpp

    model = llama_cpp.Llama(model_path=backend.options.model_path.as_posix(), vocab_only=True, verbose=False)
    try:
        (banana,) = model.tokenize(b" banana", add_bos=False)
    finally:
        model.close()
    text, done = await answer(
        backend, chat("Say hello.", temperature=0.0, max_tokens=4, logit_bias=((banana, 100.0),))
    )
    assert text == " banana" * 4
    assert done.stop_reason is StopReason.MAX_TOKENS


async def test_logit_bias_naming_a_token_outside_the_vocabulary_is_a_400(backend: LlamaCppBackend) -> None:
    req = chat("Hi.", max_tokens=2, logit_bias=((10_000_000, 5.0),))
    with trio.fail_after(60), pytest.raises(InvalidRequest) as raised:
        await run_to_end(lambda send: backend.generate(req, send))
    assert raised.value.param == "logit_bias"


def repeated_trigrams(text: str) -> int:
    words = text.split()
    counts = collections.Counter(zip(words, words[1:], words[2:], strict=False))
    return sum(n - 1 for n in counts.values() if n > 1)


@pytest.mark.parametrize("penalty", ["frequency_penalty", "presence_penalty"])
async def test_penalties_reduce_the_repetition_of_a_looping_greedy_answer(
    backend: LlamaCppBackend, penalty: str
) -> None:
    # A prompt that asks for repetition: greedy decoding loops on every build. (A dragon story, used before,
    # looped on one machine's llama.cpp build and not on another's: greedy text depends on the CPU's kernels.)
    prompt = "List the days of the week, over and over."
    plain, _ = await answer(backend, chat(prompt, temperature=0.0, max_tokens=100, logit_bias=NO_EOS))
    penalised, _ = await answer(
        backend, chat(prompt, temperature=0.0, max_tokens=100, logit_bias=NO_EOS, **{penalty: 1.5})
    )
    assert repeated_trigrams(plain) > 0, plain  # the premise: greedy decoding of this prompt repeats itself
    assert repeated_trigrams(penalised) < repeated_trigrams(plain), penalised

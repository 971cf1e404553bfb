"""Legacy ``POST /v1/completions``: bodies -> raw-prompt engine requests, events -> ``text_completion`` chunks
and objects that the openai SDK's strict ``Completion`` model accepts."""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest
from openai.types import Completion, completion_create_params

from adapters.types import (
    ChoiceEnd,
    Done,
    StopReason,
    Text,
    Thinking,
    Token,
    TokenLogprob,
    ToolUse,
    TopLogprob,
    Usage,
)
from compat.errors import RequestValidationError, UnsupportedParameter
from compat.openai.completions import (
    DEFAULT_MAX_TOKENS,
    FATES,
    IGNORED_FIELDS,
    MAPPED_FIELDS,
    UNSUPPORTED_FIELDS,
    CompletionEncoder,
    CompletionRequest,
    CompletionSSE,
    new_completion_id,
    parse_completion_request,
)

from .sdk_shapes import assert_sdk_accepts_completions_body

RVE = RequestValidationError
UNS = UnsupportedParameter


def body(**overrides: Any) -> dict[str, Any]:
    return {"model": "m", "prompt": "Once upon", **overrides}


def test_a_prompt_is_raw_text_with_openai_defaults() -> None:
    raw = body()
    assert_sdk_accepts_completions_body(raw)
    parsed = parse_completion_request(raw)
    [req] = parsed.requests
    assert req.prompt == "Once upon" and req.messages == () and req.needs_v2()
    assert req.sampling.max_tokens == DEFAULT_MAX_TOKENS == 16
    assert (parsed.stream, parsed.include_usage, parsed.echo, parsed.user) == (False, False, False, None)


def test_every_mapped_setting() -> None:
    raw = body(
        prompt=["a", "b"],
        max_tokens=5,
        temperature=0,
        top_p=0.5,
        stop=["\n"],
        seed=7,
        presence_penalty=1,
        frequency_penalty=-1,
        logit_bias={"12": 3},
        n=1,
        best_of=1,
        echo=True,
        suffix="",
        stream=True,
        stream_options={"include_usage": True, "include_obfuscation": False},
        user="u",
        logprobs=None,
    )
    assert_sdk_accepts_completions_body(raw)
    parsed = parse_completion_request({**raw, "top_k": 3, "max_completion_tokens": 99})
    assert [r.prompt for r in parsed.requests] == ["a", "b"]
    s = parsed.requests[0].sampling
    assert (s.max_tokens, s.temperature, s.top_p, s.stop, s.seed, s.top_k) == (5, 0, 0.5, ("\n",), 7, 3)
    assert (s.presence_penalty, s.frequency_penalty, s.logit_bias) == (1, -1, ((12, 3.0),))
    assert (parsed.stream, parsed.include_usage, parsed.echo, parsed.user) == (True, True, True, "u")


def test_n_best_of_and_logprobs_reach_the_engine_request() -> None:
    raw = body(prompt=["a", "b"], n=3, best_of=3, logprobs=2)
    assert_sdk_accepts_completions_body(raw)
    parsed = parse_completion_request({**raw, "top_logprobs": 9})  # a chat field: not this dialect's
    assert [(r.sampling.n, r.sampling.top_logprobs) for r in parsed.requests] == [(3, 2), (3, 2)]
    assert (parsed.n, parsed.logprobs) == (3, True)
    plain = parse_completion_request(body())
    assert (plain.n, plain.logprobs, plain.requests[0].sampling.top_logprobs) == (1, False, None)


def test_include_usage_needs_stream() -> None:
    assert not parse_completion_request(body(stream_options={"include_usage": True})).include_usage


ERRORS: list[tuple[str, dict[str, Any], type[RVE], str, str]] = [
    ("prompt a number", {"prompt": 1}, RVE, "prompt", "invalid_type"),
    ("prompt empty list", {"prompt": []}, RVE, "prompt", "invalid_value"),
    ("prompt item not a string", {"prompt": ["a", None]}, RVE, "prompt[1]", "invalid_type"),
    ("token ids", {"prompt": [1, 2]}, UNS, "prompt", "unsupported_parameter"),
    ("token id lists", {"prompt": [[1, 2]]}, UNS, "prompt", "unsupported_parameter"),
    ("n < 1", {"n": 0}, RVE, "n", "invalid_value"),
    ("n > 128", {"n": 129}, RVE, "n", "invalid_value"),
    ("best_of > n", {"best_of": 3, "n": 2}, UNS, "best_of", "unsupported_parameter"),
    ("best_of < n", {"best_of": 1, "n": 2}, RVE, "best_of", "invalid_value"),
    ("logprobs too many", {"logprobs": 6}, RVE, "logprobs", "invalid_value"),
    ("logprobs a boolean", {"logprobs": True}, RVE, "logprobs", "invalid_type"),
    ("echo with logprobs", {"echo": True, "logprobs": 0}, UNS, "echo", "unsupported_parameter"),
    ("suffix", {"suffix": "end"}, UNS, "suffix", "unsupported_parameter"),
    ("max_tokens zero", {"max_tokens": 0}, RVE, "max_tokens", "invalid_value"),
    ("echo not a bool", {"echo": 1}, RVE, "echo", "invalid_type"),
    (
        "stream_options bad",
        {"stream_options": {"include_usage": 1}},
        RVE,
        "stream_options.include_usage",
        "invalid_type",
    ),
    ("model missing", {"model": None}, RVE, "model", "invalid_type"),
]


@pytest.mark.parametrize(("name", "overrides", "error", "param", "code"), ERRORS, ids=[c[0] for c in ERRORS])
def test_invalid_body_is_a_400_naming_the_field(
    name: str, overrides: dict[str, Any], error: type[RVE], param: str, code: str
) -> None:
    with pytest.raises(error) as info:
        parse_completion_request(body(**overrides))
    assert type(info.value) is error
    assert (info.value.param, info.value.code) == (param, code)


@pytest.mark.parametrize("raw", [[], "x", None], ids=repr)
def test_body_must_be_an_object(raw: object) -> None:
    with pytest.raises(RequestValidationError):
        parse_completion_request(raw)


def test_every_sdk_field_has_a_fate() -> None:
    sdk = set(get_type_hints(completion_create_params.CompletionCreateParamsStreaming))
    handled = FATES.handled
    assert handled == MAPPED_FIELDS | set(UNSUPPORTED_FIELDS) | set(IGNORED_FIELDS)
    assert sdk - handled == set()
    assert handled - sdk == {"top_k", "min_p"}


# --- encoding ----------------------------------------------------------------------------------------------


def encoder(completion: CompletionRequest) -> CompletionEncoder:
    return CompletionEncoder(completion, "cmpl-test", 1_700_000_000)


def test_two_prompts_stream_one_choice_after_the_other_then_usage() -> None:
    enc = encoder(
        parse_completion_request(body(prompt=["a", "b"], stream=True, stream_options={"include_usage": True}))
    )
    chunks = [
        *enc.encode(Token(" x")),
        *enc.encode(Text(" y")),
        *enc.encode(Done(StopReason.MAX_TOKENS, Usage(1, 2))),
        *enc.encode(Thinking("ignored")),
        *enc.encode(Done(StopReason.STOP_SEQUENCE, Usage(1, 0))),
    ]
    assert enc.done
    assert [
        (c["choices"][0]["index"], c["choices"][0]["text"], c["choices"][0]["finish_reason"]) for c in chunks[:-1]
    ] == [
        (0, " x", None),
        (0, " y", None),
        (0, "", "length"),
        (1, "", "stop"),
    ]
    assert chunks[-1]["choices"] == []
    assert {k: chunks[-1]["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")} == {
        "prompt_tokens": 2,
        "completion_tokens": 2,
        "total_tokens": 4,
    }
    assert {(c["id"], c["object"], c["model"]) for c in chunks} == {("cmpl-test", "text_completion", "m")}
    for chunk in chunks:
        Completion.model_validate({**chunk, "choices": [{**c, "finish_reason": "stop"} for c in chunk["choices"]]})
    result = Completion.model_validate(enc.result())
    assert [(c.index, c.text, c.finish_reason) for c in result.choices] == [(0, " x y", "length"), (1, "", "stop")]
    assert result.usage is not None and result.usage.total_tokens == 4
    with pytest.raises(RuntimeError):
        enc.encode(Text("late"))


def test_echo_puts_the_prompt_first_even_without_text() -> None:
    enc = encoder(parse_completion_request(body(prompt=["Hi", "Yo"], echo=True)))
    first = enc.encode(Text(" there"))
    assert first[0]["choices"][0]["text"] == "Hi there"
    enc.encode(Done(StopReason.END, Usage()))
    enc.encode(ToolUse("c", "f", "{}"))  # no place for calls in a text completion: dropped
    second = enc.encode(Done(StopReason.END, Usage()))
    assert [c["choices"][0]["text"] for c in second] == ["Yo", ""]
    result = enc.result()
    assert [c["text"] for c in result["choices"]] == ["Hi there", "Yo"]
    assert "usage" in result


def record(token: str, logprob: float, *alternatives: tuple[str, float]) -> TokenLogprob:
    return TokenLogprob(token, logprob, tuple(TopLogprob(t, lp) for t, lp in alternatives))


def test_n_choices_per_prompt_are_indexed_prompt_by_prompt_with_legacy_logprobs() -> None:
    """Two prompts, two choices each: prompt i's choice j is index 2i + j; each text chunk carries the legacy
    lists of its tokens, offsets counted in the choice's whole text; the result joins them per choice."""
    enc = encoder(parse_completion_request(body(prompt=["a", "b"], n=2, logprobs=1, stream=True)))
    one = (record(" x", -0.5, (" x", -0.5)),)
    two = (record(" y", -1.0, (" z", -0.25)), record("!", -2.0, ("!", -2.0)))
    chunks = [
        *enc.encode(Text(" x", 0, one)),
        *enc.encode(Text(" x", 1, one)),
        *enc.encode(Text(" y!", 0, two)),
        *enc.encode(Done(StopReason.MAX_TOKENS, Usage(1, 4), choices=(ChoiceEnd(0, StopReason.MAX_TOKENS),
                                                                         ChoiceEnd(1, StopReason.END)))),
        *enc.encode(Text("q", 1, None)),  # a backend that sent no records: empty lists, never a crash
        *enc.encode(Done(StopReason.END, Usage(1, 1), choices=(ChoiceEnd(0, StopReason.END),
                                                                ChoiceEnd(1, StopReason.STOP_SEQUENCE)))),
    ]  # fmt: skip
    seen = [(c["choices"][0]["index"], c["choices"][0]["text"], c["choices"][0]["finish_reason"]) for c in chunks]
    assert seen == [
        (0, " x", None),
        (1, " x", None),
        (0, " y!", None),
        (0, "", "length"),
        (1, "", "stop"),
        (3, "q", None),
        (2, "", "stop"),
        (3, "", "stop"),
    ]
    assert chunks[2]["choices"][0]["logprobs"] == {
        "tokens": [" y", "!"],
        "token_logprobs": [-1.0, -2.0],
        "top_logprobs": [{" z": -0.25}, {"!": -2.0}],
        "text_offset": [2, 4],
    }
    assert chunks[5]["choices"][0]["logprobs"] == {
        "tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []
    }  # fmt: skip
    for chunk in chunks:
        Completion.model_validate({**chunk, "choices": [{**c, "finish_reason": "stop"} for c in chunk["choices"]]})
    result = Completion.model_validate(enc.result())
    assert [(c.index, c.text, c.finish_reason) for c in result.choices] == [
        (0, " x y!", "length"),
        (1, " x", "stop"),
        (2, "", "stop"),
        (3, "q", "stop"),
    ]
    first = result.choices[0].logprobs
    assert first is not None and first.tokens == [" x", " y", "!"] and first.text_offset == [0, 2, 4]
    assert "".join(first.tokens) == result.choices[0].text
    assert result.choices[2].logprobs is not None and result.choices[2].logprobs.tokens == []
    assert result.usage is not None and result.usage.completion_tokens == 5


def test_echo_comes_first_in_every_choice() -> None:
    enc = encoder(parse_completion_request(body(prompt="Hi", n=2, echo=True)))
    enc.encode(Text(" you", 1))
    enc.encode(Done(StopReason.END, Usage(), choices=(ChoiceEnd(0, StopReason.END), ChoiceEnd(1, StopReason.END))))
    assert [c["text"] for c in enc.result()["choices"]] == ["Hi", "Hi you"]


def test_result_before_the_end_raises() -> None:
    enc = encoder(parse_completion_request(body()))
    with pytest.raises(RuntimeError):
        enc.result()


def test_completion_ids() -> None:
    assert new_completion_id().startswith("cmpl-") and new_completion_id() != new_completion_id()


def test_sse_framing() -> None:
    sse = CompletionSSE(encoder(parse_completion_request(body(stream=True))))
    assert sse.encode(Text("x")).startswith(b'data: {"id":"cmpl-test","object":"text_completion"')
    assert sse.end() == b"data: [DONE]\n\n"
    assert sse.error(ValueError("secret"), "req_1").startswith(b'data: {"error":')

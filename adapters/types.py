"""Engine value types: what a backend receives and what it streams back.

Everything here is a frozen dataclass built once by ``compat`` (after validation) and never mutated. The
v1 request (`Resolved`) is plain-text chat; the v2 request (`ResolvedV2`) carries typed content blocks, tools,
tool choice and a response format. Streams carry the event types at the bottom of this module.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeAlias

from .errors import InvalidRequest

JSONObject: TypeAlias = Mapping[str, Any]


class Role(enum.StrEnum):
    """Message roles. ``TOOL`` appears only in v2 requests (messages made of tool results)."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class StopReason(enum.StrEnum):
    """Why a generation ended (engine vocabulary; compat maps it to OpenAI's finish_reason)."""

    END = "end"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_USE = "tool_use"


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling knobs; ``None`` means "the backend's default"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    #: Choices to generate (OpenAI ``n``). With ``n > 1`` the backend tags every content event with its
    #: ``choice`` index and ends the stream with one `Done` whose ``choices`` holds each choice's stop reason.
    n: int = 1
    #: Log probabilities: ``None`` for none, else the number of most likely alternatives (0-20) to report
    #: with each sampled token's own log probability (OpenAI ``logprobs: true`` + ``top_logprobs``).
    top_logprobs: int | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A v1 message: a role (system, user or assistant) and plain text."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Resolved:
    """A validated v1 (plain-text) chat request."""

    model: str
    messages: tuple[Message, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)


# --- v2: typed content blocks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextBlock:
    text: str


@dataclass(frozen=True, slots=True)
class ImageBlock:
    """An inline image (decoded from a ``data:`` URL; trinfer never fetches remote URLs)."""

    media_type: str
    data: bytes
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    """A tool call made by the assistant. ``arguments`` is the JSON text, already checked to be an object."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResultBlock:
    """The result of a tool call, sent back by the client (OpenAI role ``tool``)."""

    tool_use_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ThinkingBlock:
    """Reasoning from an earlier assistant turn, sent back by a client (Anthropic's ``thinking`` block).

    ``signature`` is the backend's own proof that it wrote ``text`` (kept byte for byte: a backend that signs its
    reasoning refuses a block whose signature does not match). Only backends whose capabilities say
    ``thinking_blocks`` receive these blocks; `ResolvedV2.without_thinking_blocks` removes them for the others.
    """

    text: str
    signature: str = ""


@dataclass(frozen=True, slots=True)
class RedactedThinkingBlock:
    """Reasoning the backend returned encrypted (Anthropic's ``redacted_thinking``): opaque ``data``, sent back
    unchanged, like `ThinkingBlock` only to backends that take reasoning blocks."""

    data: str


ContentBlock: TypeAlias = (
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock
)


@dataclass(frozen=True, slots=True)
class MessageV2:
    role: Role
    content: tuple[ContentBlock, ...]

    def text(self) -> str:
        """The concatenated text blocks of this message."""
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function tool offered to the model; ``parameters`` is its JSON schema."""

    name: str
    description: str | None = None
    parameters: JSONObject = field(default_factory=dict)
    strict: bool = False


class ToolChoiceMode(enum.StrEnum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    NAMED = "named"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: ToolChoiceMode = ToolChoiceMode.AUTO
    name: str | None = None  # set only for NAMED


class ResponseFormatKind(enum.StrEnum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    kind: ResponseFormatKind = ResponseFormatKind.TEXT
    name: str | None = None
    schema: JSONObject | None = None
    strict: bool = False


class ThinkingMode(enum.StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    ADAPTIVE = "adaptive"


@dataclass(frozen=True, slots=True)
class ThinkingConfig:
    """A request's own reasoning switch (Anthropic ``thinking``). Backends that think honour it in place of their
    configured default; the others ignore it. ``budget_tokens`` is set only for ``ENABLED``."""

    mode: ThinkingMode
    budget_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ResolvedV2:
    """A validated chat request with typed content, tools and output constraints."""

    model: str
    messages: tuple[MessageV2, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    parallel_tool_calls: bool = True
    #: Raw-text prompt (OpenAI legacy completions): when set, ``messages`` is empty and the backend evaluates
    #: this text as it is, with no chat template. Only backends whose capabilities say ``raw_prompt`` take it.
    prompt: str | None = None
    #: The client's reasoning switch; None leaves it to the backend's configuration.
    thinking: ThinkingConfig | None = None
    #: Whether the client reads the answer as it is generated (SSE, WebSocket). When false the client waits
    #: for all of it, so a backend may produce the events all at once (the ``openai`` backend then asks its
    #: upstream for one JSON answer instead of a stream). Set by the pipeline; the events are the same.
    stream: bool = True

    @classmethod
    def from_v1(cls, req: Resolved) -> ResolvedV2:
        """A plain-text v1 request as v2 (one `TextBlock` per message), for backends that run v2 only."""
        return cls(
            model=req.model,
            messages=tuple(MessageV2(m.role, (TextBlock(m.content),)) for m in req.messages),
            sampling=req.sampling,
        )

    def without_thinking_blocks(self) -> ResolvedV2:
        """This request with every `ThinkingBlock` and `RedactedThinkingBlock` removed (an assistant turn left
        empty by that is removed too): the form for a backend that cannot take reasoning back."""
        if not any(isinstance(b, _REASONING_BLOCKS) for m in self.messages for b in m.content):
            return self
        messages = []
        for message in self.messages:
            kept = tuple(b for b in message.content if not isinstance(b, _REASONING_BLOCKS))
            if kept or not message.content:
                messages.append(MessageV2(message.role, kept))
        return replace(self, messages=tuple(messages))

    def needs_v2(self) -> bool:
        """True when this request cannot be expressed as a plain-text v1 `Resolved`."""
        if self.prompt is not None or self.tools or self.response_format.kind is not ResponseFormatKind.TEXT:
            return True
        if self.tool_choice.mode not in (ToolChoiceMode.AUTO, ToolChoiceMode.NONE):
            return True
        return any(
            m.role is Role.TOOL or not all(isinstance(b, TextBlock) for b in m.content) for m in self.messages
        )

    def to_v1(self) -> Resolved:
        """The v1 form of this request; only valid when `needs_v2()` is false."""
        if self.needs_v2():
            raise ValueError("request uses v2 features")
        return Resolved(
            model=self.model,
            messages=tuple(Message(m.role, m.text()) for m in self.messages),
            sampling=self.sampling,
        )


_REASONING_BLOCKS = (ThinkingBlock, RedactedThinkingBlock)


# --- stream events ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one generation.

    ``cached_tokens``: prompt tokens served from a prefix cache instead of evaluated (part of
    ``prompt_tokens``); ``reasoning_tokens``: completion tokens spent thinking (part of ``completion_tokens``).
    Both are 0 where a backend has none, as OpenAI reports them.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Token:
    """v1: a piece of generated text."""

    text: str


@dataclass(frozen=True, slots=True)
class TopLogprob:
    """One likely token at a position: its text, raw bytes and log probability."""

    token: str
    logprob: float
    bytes: bytes = b""


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One sampled token's log probability, with the ``top`` most likely tokens at its position.

    ``token`` is the text this token contributed to the content, so the tokens of a choice join to exactly its
    content (a token whose bytes end mid-character has ``""`` and the next one the whole character).
    """

    token: str
    logprob: float
    top: tuple[TopLogprob, ...] = ()
    bytes: bytes = b""


@dataclass(frozen=True, slots=True)
class Text:
    """v2: a piece of generated answer text.

    ``choice`` is the index of the choice it belongs to (always 0 unless the request asked for ``n > 1``), so a
    single-choice consumer may ignore it. ``logprobs`` is ``None`` unless log probabilities were asked for;
    then it holds the records of the tokens whose text this piece completes (it may be empty).
    """

    text: str
    choice: int = 0
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True, slots=True)
class Thinking:
    """v2: a piece of reasoning text (not part of the answer).

    Backends that sign their reasoning (Anthropic) end each reasoning block with a piece carrying its
    ``signature`` (``text`` usually empty): that block is complete, and the next piece begins a new one. A
    redacted block is one piece with its opaque ``redacted`` data and no text. Consumers with no use for
    signatures (the OpenAI dialects) take only ``text`` and skip pieces without it.
    """

    text: str
    signature: str | None = None
    redacted: str | None = None


@dataclass(frozen=True, slots=True)
class ToolUse:
    """v2: one complete tool call (``arguments`` is JSON text of an object)."""

    id: str
    name: str
    arguments: str
    choice: int = 0  # the choice it belongs to, as for `Text`


@dataclass(frozen=True, slots=True)
class ChoiceEnd:
    """How one choice of an ``n > 1`` generation ended."""

    index: int
    stop_reason: StopReason


@dataclass(frozen=True, slots=True)
class Done:
    """The last event of every successful stream, exactly once.

    ``stop_reason`` is choice 0's; ``usage`` counts all choices. ``choices`` is empty for a single-choice
    generation and, for ``n > 1``, holds every choice's end in index order (consumers that know only one
    choice read ``stop_reason`` and keep working).
    """

    stop_reason: StopReason
    usage: Usage
    #: With `StopReason.STOP_SEQUENCE`: the stop sequence that ended the text, when the backend knows it
    #: (Anthropic's answer names it).
    stop_sequence: str | None = None
    choices: tuple[ChoiceEnd, ...] = ()


Event: TypeAlias = Token | Text | Thinking | ToolUse | Done


# --- embeddings -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmbedResolved:
    """A validated embeddings request: texts in ``inputs``, or (never both) token-id inputs in ``token_ids``.

    Token ids are the serving model's own vocabulary ids, used as they are (no special tokens added); only
    backends whose capabilities say ``embed_token_ids`` take them.
    """

    model: str
    inputs: tuple[str, ...]
    dimensions: int | None = None
    token_ids: tuple[tuple[int, ...], ...] = ()

    @property
    def count(self) -> int:
        """How many vectors the answer holds: one per input, text or token ids."""
        return len(self.token_ids) if self.token_ids else len(self.inputs)


def embed_width(dimensions: int | None, width: int) -> int:
    """The vector length to return from a model of ``width``: ``dimensions`` if given (OpenAI semantics: a
    prefix, normalised again), else the full width; `InvalidRequest` when it is not between 1 and ``width``."""
    wanted = width if dimensions is None else dimensions
    if not 1 <= wanted <= width:
        raise InvalidRequest(
            f"dimensions must be between 1 and {width} for this model, got {wanted}", param="dimensions"
        )
    return wanted


@dataclass(frozen=True, slots=True)
class EmbedResult:
    """One vector per input, in input order."""

    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int = 0


# --- capabilities -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackendCapabilities:
    """What a backend can do. The default is a text-only v1 backend."""

    v2: bool = False
    vision: bool = False
    tools: bool = False
    embed: bool = False
    json_schema: bool = False
    thinking: bool = False
    #: Takes reasoning of earlier turns back (`ThinkingBlock`, `RedactedThinkingBlock`); requests for other
    #: backends have those blocks removed before the backend sees them (`adapters.dispatch`).
    thinking_blocks: bool = False
    #: Takes a raw-text prompt (`ResolvedV2.prompt`) evaluated without a chat template.
    raw_prompt: bool = False
    #: Generates ``n > 1`` choices per request (`SamplingParams.n`).
    choices: bool = False
    #: Reports log probabilities (`SamplingParams.top_logprobs`).
    logprobs: bool = False
    #: Embeds token-id inputs (`EmbedResolved.token_ids`) as ids of its own vocabulary.
    embed_token_ids: bool = False
    embed_dimensions: int | None = None
    accelerator: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

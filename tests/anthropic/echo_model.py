"""A deterministic stand-in for Claude behind the fake Messages API, for the backend conformance suite.

It answers from what the request says, the way the real API would shape it: the answer text is the last user
message, streamed one whitespace-delimited word per ``text_delta``; ``max_tokens`` cuts it after that many
words (``max_tokens``); a stop sequence cuts it just before its first occurrence (``stop_sequence``); a forced
``tool_choice`` (``any`` or ``tool``) calls the tool with input built from its ``input_schema``
(``tool_use``), streamed as JSON pieces; structured outputs (``output_config.format``) answer with JSON built
from the schema. Usage: input tokens are the words of the system prompt and messages; output tokens are the
number of deltas.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .fake_upstream import RecordedRequest, Reply, message_end, message_start, stream_reply, text_block, tool_block


def words(text: str) -> list[str]:
    """One token per whitespace-delimited word, whitespace kept, so the pieces join back into the text."""
    return re.findall(r"\s*\S+\s*", text) if text.strip() else []


def count_words(texts: list[str] | tuple[str, ...]) -> int:
    return sum(len(text.split()) for text in texts)


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [block.get("text", "") for block in content if block.get("type") == "text"]


def instance_of(schema: dict[str, Any], text: str) -> Any:
    """A small value valid against ``schema`` (the subset structured outputs and tool schemas use)."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return instance_of(schema[key][0], text)
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: instance_of(sub, text) for name, sub in properties.items()}
    if kind == "array":
        return [instance_of(schema.get("items", {"type": "string"}), text)]
    return {"string": text, "integer": 3, "number": 1.5, "boolean": True, "null": None}[kind]


def _pieces(text: str, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def echo_reply(request: RecordedRequest) -> Reply:
    body = request.body
    prompt_texts = _texts(body.get("system", "")) + [t for m in body["messages"] for t in _texts(m["content"])]
    start = message_start(model=body["model"], input_tokens=max(1, count_words(prompt_texts)))
    user_turns = [m for m in body["messages"] if m["role"] == "user"]
    prompt = " ".join(_texts(user_turns[-1]["content"])) if user_turns else ""

    choice = body.get("tool_choice", {})
    if choice.get("type") in ("any", "tool"):
        name = choice.get("name") or body["tools"][0]["name"]
        tool = next(t for t in body["tools"] if t["name"] == name)
        arguments = json.dumps(instance_of(tool["input_schema"], prompt))
        calls = _pieces(arguments)
        return stream_reply(start, tool_block(0, "toolu_echo_0", name, calls), message_end("tool_use", len(calls)))

    output_format = body.get("output_config", {}).get("format")
    if output_format is not None:
        pieces = _pieces(json.dumps(instance_of(output_format["schema"], prompt)))
        return stream_reply(start, text_block(0, pieces), message_end("end_turn", len(pieces)))

    answer, stop_reason, stop_sequence = prompt, "end_turn", None
    for stop in body.get("stop_sequences", []):
        if stop in answer:
            answer, stop_reason, stop_sequence = answer[: answer.index(stop)], "stop_sequence", stop
    pieces = words(answer)
    if len(pieces) > body["max_tokens"]:
        pieces, stop_reason, stop_sequence = pieces[: body["max_tokens"]], "max_tokens", None
    return stream_reply(start, text_block(0, pieces), message_end(stop_reason, len(pieces), stop_sequence))

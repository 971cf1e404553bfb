"""The anthropic SDK against trinfer: a streamed answer from a local model, then a tool round trip.

Start a server first, e.g. `trinfer serve` (the local SmolLM2 model) or `trinfer serve --backend mock`, then:

    python examples/anthropic_sdk.py [BASE_URL] [MODEL]

BASE_URL defaults to $ANTHROPIC_BASE_URL, then http://127.0.0.1:8080 (no /v1: the SDK adds it). MODEL
defaults to $TRINFER_MODEL, then smollm2-135m-instruct (the default local model). The key is
$ANTHROPIC_API_KEY (any value works when the server has no api_keys). Any model trinfer serves answers here:
a local one, the mock, or Claude through the anthropic backend.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anthropic

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_MODEL = "smollm2-135m-instruct"

WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def get_weather(city: str) -> str:
    """The 'tool': a real program would call a weather service here."""
    return f"It is sunny and 21 degrees C in {city or 'that city'}."


def main() -> None:
    base_url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ANTHROPIC_BASE_URL", DEFAULT_BASE_URL)
    model = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("TRINFER_MODEL", DEFAULT_MODEL)
    client = anthropic.Anthropic(base_url=base_url, api_key=os.environ.get("ANTHROPIC_API_KEY", "no-key-needed"))

    # 1. A streamed answer: text is printed as it arrives; the final message carries the usage.
    with client.messages.stream(
        model=model,
        max_tokens=128,
        system="You are a concise assistant.",
        messages=[{"role": "user", "content": "Tell me a very short story about a trio of ducks."}],
    ) as stream:
        for text in stream.text_stream:
            sys.stdout.write(text)
            sys.stdout.flush()
        story = stream.get_final_message()
    print(f"\n[{model}] stop_reason={story.stop_reason} output_tokens={story.usage.output_tokens}")

    # 2. A tool round trip: the model is made to call get_weather, we run it, and send the result back.
    question: Any = {"role": "user", "content": "What is the weather in Paris?"}
    asked = client.messages.create(
        model=model,
        max_tokens=128,
        messages=[question],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    call = next(block for block in asked.content if block.type == "tool_use")
    print(f"tool call: {call.name}({json.dumps(call.input)})")
    arguments = call.input if isinstance(call.input, dict) else {}
    result = get_weather(str(arguments.get("city", "")))
    follow_up: Any = [
        question,
        {"role": "assistant", "content": [block.model_dump() for block in asked.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": result}]},
    ]
    with client.messages.stream(
        model=model, max_tokens=128, messages=follow_up, tools=[WEATHER_TOOL], tool_choice={"type": "none"}
    ) as stream:
        for text in stream.text_stream:
            sys.stdout.write(text)
            sys.stdout.flush()
        answer = stream.get_final_message()
    print(f"\n[{model}] stop_reason={answer.stop_reason}")
    client.close()


if __name__ == "__main__":
    main()

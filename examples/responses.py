"""The Responses API, streamed, with a tool call round trip: the model calls a local function, the script runs
it and sends the result back, and the model's final answer streams in.

Start a server first, e.g. `trinfer serve --backend mock`, then:

    python examples/responses.py [BASE_URL] [MODEL]

trinfer is stateless: instead of `previous_response_id`, the second request sends the whole conversation
(the first answer's output items, then the tool's result) as `input`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import openai
from _connection import api_key, base_url, pick_model

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def get_weather(city: str) -> str:
    """The local function the model may call."""
    return json.dumps({"city": city or "Paris", "sky": "clear", "celsius": 21})


def stream_turn(client: openai.OpenAI, model: str, conversation: list[Any], tool_choice: str) -> Any:
    """One streamed turn: print text as it arrives, return the final response."""
    with client.responses.stream(
        model=model, input=conversation, tools=[WEATHER_TOOL], tool_choice=tool_choice, max_output_tokens=128
    ) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                sys.stdout.write(event.delta)
                sys.stdout.flush()
            elif event.type == "response.function_call_arguments.done":
                print(f"[model calls get_weather with {event.arguments}]")
        return stream.get_final_response()


def main() -> None:
    client = openai.OpenAI(base_url=base_url(), api_key=api_key())
    model = pick_model(client)
    conversation: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = stream_turn(client, model, conversation, tool_choice="required")
    conversation += [item.model_dump(exclude_none=True) for item in first.output]
    for item in first.output:
        if item.type == "function_call":
            result = get_weather(**json.loads(item.arguments))
            print(f"[get_weather returned {result}]")
            conversation.append({"type": "function_call_output", "call_id": item.call_id, "output": result})
    conversation.append({"role": "user", "content": "Thanks! Summarise that weather in one sentence."})
    final = stream_turn(client, model, conversation, tool_choice="none")
    usage = final.usage
    print(f"\n[{model}] status={final.status} output_tokens={usage.output_tokens if usage else '?'}")
    client.close()


if __name__ == "__main__":
    main()

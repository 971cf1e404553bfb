"""A streamed chat completion: tokens are printed as they arrive (server-sent events), then the usage.

Needs the openai SDK (`pip install openai`). Start a server first, e.g. `trinfer serve --backend mock`,
then:

    python examples/chat_stream.py [BASE_URL] [MODEL]

Interrupting it (Ctrl-C) closes the connection, and the server stops the generation at once.
"""

from __future__ import annotations

import sys

import openai
from _connection import api_key, base_url, pick_model


def main() -> None:
    client = openai.OpenAI(base_url=base_url(), api_key=api_key())
    model = pick_model(client)
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Tell me a very short story about a trio of ducks."}],
        max_tokens=128,
        stream=True,
        stream_options={"include_usage": True},  # one last chunk, with no choices, carries the usage
    )
    finish_reason = None
    with stream:
        for chunk in stream:
            if chunk.choices:
                delta = chunk.choices[0].delta
                if delta.content:
                    sys.stdout.write(delta.content)
                    sys.stdout.flush()
                finish_reason = chunk.choices[0].finish_reason or finish_reason
            elif chunk.usage is not None:
                print(
                    f"\n[{model}] finish_reason={finish_reason} completion_tokens={chunk.usage.completion_tokens}"
                )
    client.close()


if __name__ == "__main__":
    main()

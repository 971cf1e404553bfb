"""One chat completion with the official openai SDK (synchronous client).

Needs the openai SDK (`pip install openai`). Start a server first, e.g. `trinfer serve --backend mock`,
then:

    python examples/chat_sync.py [BASE_URL] [MODEL]
"""

from __future__ import annotations

import openai
from _connection import api_key, base_url, pick_model


def main() -> None:
    client = openai.OpenAI(base_url=base_url(), api_key=api_key())
    model = pick_model(client)
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello to trinfer in five words."},
        ],
        max_tokens=64,
    )
    choice = reply.choices[0]
    print(choice.message.content)
    usage = reply.usage
    if usage is not None:
        tokens = f"{usage.prompt_tokens}+{usage.completion_tokens}"
        print(f"[{model}] finish_reason={choice.finish_reason} tokens={tokens}")
    client.close()


if __name__ == "__main__":
    main()

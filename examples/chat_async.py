"""Several chat completions at once with the async openai client (asyncio), plus an error handled.

Needs the openai SDK (`pip install openai`). Start a server first, e.g. `trinfer serve --backend mock`,
then:

    python examples/chat_async.py [BASE_URL] [MODEL]

The server admits a configured number of generations per backend at once and queues a few more; past that it
answers 429 with Retry-After at once, which the SDK raises as `openai.RateLimitError` (its own retries are
turned off here so you can see it).
"""

from __future__ import annotations

import asyncio

import openai
from _connection import api_key, base_url, pick_model_async

QUESTIONS = ["What is trio?", "What is structured concurrency?", "Why cancel a generation?"]


async def ask(client: openai.AsyncOpenAI, model: str, question: str) -> str:
    try:
        reply = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}], max_tokens=64
        )
    except openai.RateLimitError as exc:
        return f"server busy, retry after {exc.response.headers.get('retry-after')} s"
    return reply.choices[0].message.content or ""


async def main() -> None:
    async with openai.AsyncOpenAI(base_url=base_url(), api_key=api_key(), max_retries=0) as client:
        model = await pick_model_async(client)
        answers = await asyncio.gather(*(ask(client, model, q) for q in QUESTIONS))
        for question, answer in zip(QUESTIONS, answers, strict=True):
            print(f"Q: {question}\nA: {answer}\n")
        try:
            await client.chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.NotFoundError as exc:
            print(f"unknown model -> {exc.status_code} {exc.code}")


if __name__ == "__main__":
    asyncio.run(main())

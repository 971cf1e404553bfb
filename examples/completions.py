"""Legacy text completions (`POST /v1/completions`): the prompt is raw text, continued as it is, with no chat
template; a list of prompts gets one choice per prompt, in order (`n` choices per prompt with `n`), and
`logprobs: k` adds each token's log probability with its k likeliest alternatives.

Start a server first, e.g. `trinfer serve --backend mock`, then:

    python examples/completions.py [BASE_URL] [MODEL]

Only backends that take raw text answer it (llamacpp and mock; a Claude model answers 400).
"""

from __future__ import annotations

import sys

import openai
from _connection import api_key, base_url, pick_model


def main() -> None:
    client = openai.OpenAI(base_url=base_url(), api_key=api_key())
    model = pick_model(client)
    prompts = ["Once upon a time, in a quiet harbour,", "The three laws of structured concurrency are"]
    completion = client.completions.create(model=model, prompt=prompts, max_tokens=24, temperature=0)
    for choice in completion.choices:
        print(f"[{choice.index}] {prompts[choice.index]!r} -> {choice.text!r} ({choice.finish_reason})")
    sampled = client.completions.create(model=model, prompt=prompts[0], max_tokens=6, n=2, logprobs=1)
    for choice in sampled.choices:
        lp = choice.logprobs
        pairs = list(zip(lp.tokens or [], lp.token_logprobs or [], strict=True)) if lp else []
        print(f"sample {choice.index}: " + " ".join(f"{token!r}={logprob:.2f}" for token, logprob in pairs))
    print("streamed:", end=" ")
    stream = client.completions.create(model=model, prompt=prompts[0], max_tokens=24, temperature=0, stream=True)
    with stream:
        for chunk in stream:
            if chunk.choices:
                sys.stdout.write(chunk.choices[0].text)
                sys.stdout.flush()
    usage = completion.usage
    print(f"\n[{model}] prompt_tokens={usage.prompt_tokens if usage else '?'}")
    client.close()


if __name__ == "__main__":
    main()

"""P3 peer (a), the limit: llama-cpp-python called in-process, no server, no HTTP.

Run pinned to the server core by `bench.p3_local_model`; prints one JSON line per request with the time to
the first content token and the arrival time of every token, measured around ``create_chat_completion``.

    python -m bench.inprocess_llama MODEL_PATH MAX_TOKENS PROMPT [PROMPT ...]
"""

from __future__ import annotations

import json
import sys
import time

from llama_cpp import Llama


def main() -> None:
    model_path, max_tokens, *prompts = sys.argv[1:]
    llm = Llama(model_path=model_path, n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False)
    for prompt in prompts:
        sent_at = time.perf_counter()
        times: list[float] = []
        completion_tokens = 0
        for chunk in llm.create_chat_completion(
            messages=[{"role": "user", "content": prompt}],
            max_tokens=int(max_tokens),
            temperature=0.0,
            stream=True,
        ):
            delta = chunk["choices"][0]["delta"]  # type: ignore[index]
            if delta.get("content"):
                times.append(time.perf_counter())
                completion_tokens += 1
        print(json.dumps({"sent_at": sent_at, "token_times": times}), flush=True)
    llm.close()


if __name__ == "__main__":
    main()

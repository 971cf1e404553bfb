"""Every HTTP route that takes a JSON body decodes and parses a large one off the event loop, with the same answer
and the same errors as for a small one.

A body of at least ``proxy.body_parsing.THREAD_THRESHOLD_BYTES`` goes to a worker thread, is decoded with the
interruptible decoder and parsed with the garbage collector paused (see that module). Here each route gets a
~300 KiB body through the real SDKs and answers exactly what the mock says for it: the echo's first tokens
(``max_tokens`` of them, ``length`` / ``max_tokens``), the prompt's word count as usage, one vector per input. A
large body that is malformed near its end (invalid JSON, a lone surrogate) is still a 400 ``invalid_json``, and
afterwards the collector is running again, with what the parses built frozen out of its way. How long any of it
takes is measured by bench/big_body.py, never asserted here; the real clock is used because of the threads.
"""

from __future__ import annotations

import gc
import json

import pytest
import trio

from proxy.body_parsing import THREAD_THRESHOLD_BYTES
from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon
from tests.messages.sdk import async_client

#: One user message of this many words ("w0 w1 ..."), well past the threshold.
WORDS = 40_000
TEXT = " ".join(f"w{i}" for i in range(WORDS))
MESSAGES = [{"role": "user", "content": TEXT}]


async def test_each_route_answers_a_large_body_as_it_answers_a_small_one() -> None:
    assert len(TEXT.encode()) > THREAD_THRESHOLD_BYTES
    with trio.fail_after(120):
        async with running_daemon(mock_config(embed_dim=8)) as d, d.client() as client:
            chat = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES, max_tokens=3)
            completion = await client.completions.create(model=MOCK_MODEL, prompt=TEXT, max_tokens=2)
            response = await client.responses.create(model=MOCK_MODEL, input=TEXT, max_output_tokens=4)
            embedding = await client.embeddings.create(model=MOCK_MODEL, input=[TEXT, "small"])
            async with async_client(d) as claude:
                message = await claude.messages.create(model=MOCK_MODEL, max_tokens=2, messages=MESSAGES)
                counted = await claude.messages.count_tokens(model=MOCK_MODEL, messages=MESSAGES)
            status = d.backend_status()
    assert chat.choices[0].message.content == "w0 w1 w2 "
    assert chat.choices[0].finish_reason == "length"
    assert chat.usage is not None and (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (WORDS, 3)
    assert (completion.choices[0].text, completion.choices[0].finish_reason) == ("w0 w1 ", "length")
    assert response.output_text == "w0 w1 w2 w3 " and response.status == "incomplete"
    assert [len(item.embedding) for item in embedding.data] == [8, 8]
    assert message.content[0].text == "w0 w1 " and message.stop_reason == "max_tokens"  # type: ignore[union-attr]
    assert message.usage.input_tokens == WORDS
    assert counted.input_tokens == WORDS
    assert status["completed"] == 4 and status["failed"] == 0


#: A valid chat body but for its last two characters (``]}``), which each case replaces.
HEAD = json.dumps({"model": MOCK_MODEL, "messages": MESSAGES}).encode()[:-2]


@pytest.mark.parametrize(
    ("tail", "fragment"),
    [(b"}", "Expecting ',' delimiter"), (b'], "x": "\\ud800"}', "unpaired UTF-16 surrogate")],
    ids=["unclosed array", "lone surrogate"],
)
async def test_a_large_malformed_body_is_invalid_json_and_the_collector_runs_again(
    tail: bytes, fragment: str
) -> None:
    body = HEAD + tail
    assert len(body) > THREAD_THRESHOLD_BYTES
    with trio.fail_after(120):
        async with running_daemon(mock_config()) as d, d.http() as http:
            answer = await http.post(
                "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
            )
            status = d.backend_status()
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_json" and fragment in error["message"]
    assert status["started"] == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0

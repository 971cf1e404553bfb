"""The real SmolLM2 model through the llamacpp backend passes the shared backend conformance suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.llamacpp import LlamaCppBackend
from adapters.types import SamplingParams

from ..adapters.conformance import ConformanceProfile, checks_for, status_counter

pytestmark = pytest.mark.llama

PROMPTS = (
    "Name three colours of the rainbow.",
    "Write one sentence about the sea.",
)


def profile(model_path: Path) -> ConformanceProfile:
    """Temperature 0 with a fixed seed: the answers are deterministic. A frequency penalty keeps the 135M model
    from looping inside a JSON string until max_tokens (which it does at temperature 0 without one)."""
    return ConformanceProfile(
        model="smollm2-135m-instruct",
        prompts=PROMPTS,
        make_unbooted=lambda: LlamaCppBackend.from_options({"model_path": str(model_path)}),
        sampling=SamplingParams(temperature=0.0, max_tokens=24, seed=7, frequency_penalty=1.0),
        structured_max_tokens=160,
        deterministic=True,
        active_generations=status_counter("active"),
        cancelled_generations=status_counter("cancelled"),
    )


# Collection needs only which checks apply, not a real path.
@pytest.mark.parametrize("check", checks_for(profile(Path("unused.gguf"))))
async def test_conformance(check: Any, backend: LlamaCppBackend, chat_model_path: Path) -> None:
    await check(backend, profile(chat_model_path))

"""Where the examples connect: the base URL, API key and model, from the command line or the environment.

    python examples/chat_sync.py [BASE_URL] [MODEL]

BASE_URL defaults to $OPENAI_BASE_URL, then http://127.0.0.1:8080/v1 (what `trinfer serve` listens on).
The key is $OPENAI_API_KEY (any value works when the server has no api_keys). MODEL defaults to $TRINFER_MODEL,
then the first model the server lists.

The SDK examples need the openai package: `pip install openai` (trinfer's `examples` extra installs it).
"""

from __future__ import annotations

import os
import sys

import openai

DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"


def base_url() -> str:
    return sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OPENAI_BASE_URL", DEFAULT_BASE_URL)


def api_key() -> str:
    return os.environ.get("OPENAI_API_KEY", "no-key-needed")


def model_from_args() -> str | None:
    return sys.argv[2] if len(sys.argv) > 2 else os.environ.get("TRINFER_MODEL")


def pick_model(client: openai.OpenAI) -> str:
    """The model named on the command line or in $TRINFER_MODEL, else the first one the server serves."""
    return model_from_args() or client.models.list().data[0].id


async def pick_model_async(client: openai.AsyncOpenAI) -> str:
    return model_from_args() or (await client.models.list()).data[0].id

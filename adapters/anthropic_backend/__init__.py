"""The ``anthropic`` backend: Claude models behind the OpenAI API, through the official ``anthropic`` SDK.

Modules: `config` (options, API key lookup), `translate_request` (engine request -> Messages API body),
`translate_stream` (raw stream events -> engine events), `errors` (SDK exceptions -> engine errors),
`backend` (the `AnthropicBackend` producer). See docs/anthropic.md.
"""

from .backend import AnthropicBackend

__all__ = ["AnthropicBackend"]

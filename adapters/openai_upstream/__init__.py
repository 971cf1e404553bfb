"""The ``openai`` backend: any OpenAI-compatible server (vLLM, SGLang, llama-server, another trinfer, a hosted
API) behind trinfer, load-balanced over several base URLs (DESIGN.md section 9, docs/scale-out.md).

Modules: `options` (config keys, API key lookup), `pool` (base URLs: health, least-outstanding choice,
probes), `translate_request` (engine request -> OpenAI JSON), `translate_stream` (SSE chunks -> engine events),
`http1` (the sans-IO HTTP/1.1 response parser), `client` (connections, requests, responses), `errors` (the
client's exceptions and upstream statuses -> engine errors), `backend` (the `OpenAIUpstreamBackend`).
"""

from .backend import OpenAIUpstreamBackend

__all__ = ["OpenAIUpstreamBackend"]

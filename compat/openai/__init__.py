"""The OpenAI wire dialects: chat completions, embeddings, models, SSE and the WebSocket frames.

Each module parses one OpenAI request shape into the engine's value types (`adapters.types`) or encodes
engine events into OpenAI's wire shapes. Shared, dialect-neutral pieces (field validation, JSON bodies, the
error taxonomy) live one level up, in `compat`.
"""

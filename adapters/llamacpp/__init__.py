"""The ``llamacpp`` backend: local inference with llama.cpp through llama-cpp-python.

Importing this package does not import ``llama_cpp`` (it is imported when a model is loaded), so that
`adapters.llamacpp.defaults` can say how to install it when it is missing. See docs/llamacpp.md.
"""

from .backend import LlamaCppBackend

__all__ = ["LlamaCppBackend"]

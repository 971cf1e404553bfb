"""Chat templates: how a list of messages becomes the one prompt string the model was trained on.

Resolution, at boot, in this order:
1. ``chat_format`` in the config names one of llama-cpp-python's built-in formats (``chatml``, ``llama-2``,
   ``llama-3``, ``gemma``...): that formatter is used.
2. Otherwise the GGUF's own Jinja2 template (metadata ``tokenizer.chat_template``) is used, rendered by
   llama-cpp-python's sandboxed `Jinja2ChatFormatter` with the model's BOS/EOS token texts.
3. Otherwise the model fails to load, with a message saying how to name a format. llama-cpp-python itself
   would silently fall back to the ``llama-2`` format, which makes a model that was trained on another format
   answer garbage; trinfer refuses instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..backend import BackendConfigError
from .errors import Phase, translate

#: llama-cpp-python's registered chat formats and the module-level formatter functions that implement them.
BUILTIN_FORMATS: Mapping[str, str] = {
    "alpaca": "format_alpaca",
    "baichuan": "format_baichuan",
    "baichuan-2": "format_baichuan2",
    "chatglm3": "format_chatglm3",
    "chatml": "format_chatml",
    "gemma": "format_gemma",
    "intel": "format_intel",
    "llama-2": "format_llama2",
    "llama-3": "format_llama3",
    "mistral-instruct": "format_mistral_instruct",
    "mistrallite": "format_mistrallite",
    "oasst_llama": "format_oasst_llama",
    "open-orca": "format_open_orca",
    "openbuddy": "format_openbuddy",
    "openchat": "format_openchat",
    "phind": "format_phind",
    "pygmalion": "format_pygmalion",
    "qwen": "format_qwen",
    "redpajama-incite": "format_redpajama_incite",
    "saiga": "format_saiga",
    "snoozy": "format_snoozy",
    "vicuna": "format",
    "zephyr": "format_zephyr",
}

TEMPLATE_KEY = "tokenizer.chat_template"


@dataclass(frozen=True, slots=True)
class Prompt:
    """A rendered prompt: its text, the stop strings its format implies, and whether BOS must be prepended."""

    text: str
    stop: tuple[str, ...]
    add_bos: bool


@dataclass(frozen=True, slots=True)
class ChatTemplate:
    """A resolved chat format. ``source`` says where it came from (shown on /admin/status)."""

    source: str
    formatter: Callable[..., Any]

    def render(self, messages: Sequence[Mapping[str, str]]) -> Prompt:
        """The prompt for ``messages`` (dicts with ``role`` and ``content``), ending where the reply starts.

        Raises `InvalidRequest` when the template rejects the messages (e.g. roles that must alternate).
        """
        try:
            response = self.formatter(messages=[dict(m) for m in messages])
        except Exception as exc:
            raise translate(exc, Phase.TEMPLATE, param="messages") from exc
        stop = response.stop
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        return Prompt(text=response.prompt, stop=tuple(s for s in stops if s), add_bos=not response.added_special)


def resolve_template(model: Any, chat_format: str | None, model_path: str) -> ChatTemplate:
    """The chat template for a loaded `model.Model` (see the module docstring). Raises `BackendConfigError`."""
    from llama_cpp import llama_chat_format

    if chat_format is not None:
        function_name = BUILTIN_FORMATS.get(chat_format)
        if function_name is None:
            raise BackendConfigError(
                f"llamacpp option 'chat_format': unknown format {chat_format!r} "
                f"(expected one of {', '.join(sorted(BUILTIN_FORMATS))})"
            )
        return ChatTemplate(
            source=f"chat_format:{chat_format}", formatter=getattr(llama_chat_format, function_name)
        )
    template = model.metadata(TEMPLATE_KEY)
    if not template:
        raise BackendConfigError(
            f"{model_path} has no chat template in its GGUF metadata ({TEMPLATE_KEY}), so trinfer cannot know "
            "how to format a conversation for it; set chat_format in its [[backends]] table to the format it "
            f"was trained with (one of {', '.join(sorted(BUILTIN_FORMATS))})"
        )
    eos_id = model.eos
    try:
        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_text(eos_id),
            bos_token=model.token_text(model.bos),
            stop_token_ids=[eos_id],
        )
    except Exception as exc:  # a template that does not compile
        raise BackendConfigError(
            f"{model_path}: the chat template in its GGUF metadata does not compile ({exc}); set chat_format "
            "in its [[backends]] table"
        ) from exc
    return ChatTemplate(source=f"gguf:{TEMPLATE_KEY}", formatter=formatter)

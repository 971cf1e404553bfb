"""The keys of several local models: ``server.models_dir`` (and ``--models-dir``, ``TRINFER_MODELS_DIR``),
``server.max_loaded_models``, ``[llamacpp_defaults]``, and ``load``/``keep_alive_s`` per backend; the folder
scan (names, chat versus embedding from GGUF metadata, explicit tables winning, broken files reported).
No model is loaded: the GGUF files here are headers written with the ``gguf`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.llamacpp.gguf_info import GgufKind, UnreadableGguf, read_kind
from proxy.cli import main
from proxy.config import ConfigError, Flags, config_from_mapping, load_config

gguf = pytest.importorskip("gguf", reason="the gguf package comes with trinfer[llama]")


def write_gguf(path: Path, arch: str = "llama", *, pooling: bool = False, vocab: int = 50) -> Path:
    """A GGUF holding metadata only (a token list included, so arrays of strings are skipped too)."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(path.stem)
    writer.add_context_length(512)
    writer.add_token_list([f"tok{i}" for i in range(vocab)])
    writer.add_token_scores([0.0] * vocab)
    if pooling:
        writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    write_gguf(models / "chatty.gguf")
    write_gguf(models / "minilm.gguf", "bert", pooling=True)
    write_gguf(models / "qwen-embed.gguf", "qwen3", pooling=True)
    (models / "junk.gguf").write_bytes(b"\x00" * 64)
    (models / "readme.md").write_text("not a model")
    return models


def by_name(data: dict[str, Any]) -> dict[str, Any]:
    return {b.name: b for b in config_from_mapping(data).backends}


def test_every_gguf_is_a_model_named_after_its_stem_chat_or_embedding_from_its_metadata(folder: Path) -> None:
    config = config_from_mapping({"server": {"models_dir": str(folder)}})
    backends = {b.name: b for b in config.backends}
    assert sorted(backends) == ["chatty", "minilm", "qwen-embed"]
    assert backends["chatty"].models == ("chatty",) and backends["chatty"].options["embedding"] is False
    assert backends["minilm"].options["embedding"] is True and backends["minilm"].active == 1
    assert backends["qwen-embed"].options["embedding"] is True
    assert {b.load for b in backends.values()} == {"on_demand"}
    assert backends["chatty"].options["model_path"] == str(folder / "chatty.gguf")
    assert config.models_folder is not None
    assert config.models_folder.status()["problems"] == [
        {"file": "junk.gguf", "error": "not a GGUF file (no GGUF magic at its start)"}
    ]


def test_llamacpp_defaults_apply_to_every_folder_model(folder: Path) -> None:
    defaults = {"n_ctx": 1024, "parallel": 2, "load": "boot", "keep_alive_s": 300, "queue": 3}
    backends = by_name({"server": {"models_dir": str(folder)}, "llamacpp_defaults": defaults})
    chatty = backends["chatty"]
    assert chatty.options["n_ctx"] == 1024 and chatty.active == 2 and chatty.queue == 3
    assert chatty.load == "boot" and chatty.keep_alive_s == 300.0


def test_explicit_backends_win_a_name_clash_and_a_file_is_never_served_twice(folder: Path) -> None:
    explicit = [
        {"name": "chatty", "kind": "mock", "models": ["m1"]},
        {"name": "embedder", "kind": "llamacpp", "models": ["all-minilm"],
         "model_path": str(folder / "minilm.gguf"), "embedding": True},
    ]  # fmt: skip
    config = config_from_mapping({"server": {"models_dir": str(folder)}, "backends": explicit})
    assert [b.name for b in config.backends] == ["chatty", "embedder", "qwen-embed"]
    assert config.models_folder is not None
    assert config.models_folder.shadowed == (
        "chatty.gguf: the [[backends]] table for 'chatty' is served instead",
        "minilm.gguf: already served by a [[backends]] table with this model_path",
    )


def test_a_model_id_clash_also_goes_to_the_explicit_table(folder: Path) -> None:
    explicit = [{"name": "mock", "kind": "mock", "models": ["qwen-embed"]}]
    backends = by_name({"server": {"models_dir": str(folder)}, "backends": explicit})
    assert sorted(backends) == ["chatty", "minilm", "mock"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backends": [{"kind": "mock", "models": ["m"], "load": "lazy"}]},
         "backends[0].load must be one of boot, on_demand, got 'lazy'"),
        ({"backends": [{"kind": "mock", "models": ["m"], "keep_alive_s": -1}]},
         "backends[0].keep_alive_s must be a number of seconds >= 0 (0 = never unload), got -1"),
        ({"backends": [{"kind": "mock", "models": ["m"], "keep_alive_s": "5m"}]},
         "backends[0].keep_alive_s must be a number of seconds >= 0"),
        ({"backends": [{"kind": "anthropic", "models": ["m"], "load": "on_demand"}]},
         "unknown key backends[0].load"),
        ({"backends": [{"kind": "mock", "models": ["m"], "keep_alive": 5}]},
         "unknown key backends[0].keep_alive: did you mean 'keep_alive_s'?"),
        ({"server": {"max_loaded_models": -1}, "backends": [{"kind": "mock", "models": ["m"]}]},
         "server.max_loaded_models must be >= 0, got -1"),
        ({"server": {"max_loaded_model": 1}, "backends": [{"kind": "mock", "models": ["m"]}]},
         "unknown key server.max_loaded_model: did you mean 'max_loaded_models'?"),
        ({"llamacpp_default": {}, "backends": [{"kind": "mock", "models": ["m"]}]},
         "unknown top-level key 'llamacpp_default': did you mean 'llamacpp_defaults'?"),
        ({"llamacpp_defaults": {"n_ctxx": 5}, "backends": [{"kind": "mock", "models": ["m"]}]},
         "unknown key llamacpp_defaults.n_ctxx: did you mean 'n_ctx'?"),
        ({"llamacpp_defaults": {"model_path": "x.gguf"}, "backends": [{"kind": "mock", "models": ["m"]}]},
         "llamacpp_defaults.model_path cannot be set here: a models folder sets it per file"),
        ({"llamacpp_defaults": {"n_ctx": "big"}, "backends": [{"kind": "mock", "models": ["m"]}]},
         "llamacpp_defaults: llamacpp option 'n_ctx' must be an integer, got 'big'"),
        ({"llamacpp_defaults": [], "backends": [{"kind": "mock", "models": ["m"]}]},
         "[llamacpp_defaults] must be a table"),
        ({"server": {"max_loaded_models": 1}, "backends": [
            {"name": "a", "kind": "mock", "models": ["a"]}, {"name": "b", "kind": "mock", "models": ["b"]}]},
         "server.max_loaded_models = 1 but 2 models load at boot (a, b)"),
        ({}, "at least one [[backends]] table (or a server.models_dir) is required"),
    ],
)  # fmt: skip
def test_bad_values_get_one_clear_line(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data)
    assert message in str(caught.value)


def test_a_models_dir_that_is_not_a_folder_or_serves_nothing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server.models_dir: '.*missing' is not a directory"):
        config_from_mapping({"server": {"models_dir": str(tmp_path / "missing")}})
    (tmp_path / "junk.gguf").write_bytes(b"junk")
    with pytest.raises(ConfigError, match=r"holds no servable .gguf file and no \[\[backends\]\] table"):
        config_from_mapping({"server": {"models_dir": str(tmp_path)}})


def test_one_on_demand_model_beside_boot_ones_fits_the_bound() -> None:
    backends = [{"name": "a", "kind": "mock", "models": ["a"]},
                {"name": "b", "kind": "mock", "models": ["b"], "load": "on_demand"}]  # fmt: skip
    config = config_from_mapping({"server": {"max_loaded_models": 1}, "backends": backends})
    assert [b.is_managed(1) for b in config.backends] == [True, True]
    assert not config.backends[0].is_managed(0) and config.backends[1].is_managed(0)


def test_models_dir_comes_from_the_flag_the_environment_or_the_file(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    write_gguf(other / "solo.gguf")
    env = {"TRINFER_BACKEND": "mock"}
    assert load_config(Flags(models_dir=str(folder)), env).server.models_dir == str(folder)
    from_env = load_config(Flags(), {**env, "TRINFER_MODELS_DIR": str(other), "TRINFER_MAX_LOADED_MODELS": "2"})
    assert from_env.server.models_dir == str(other) and from_env.server.max_loaded_models == 2
    assert [b.name for b in from_env.backends] == ["mock", "solo"]
    flag_wins = load_config(Flags(models_dir=str(folder)), {**env, "TRINFER_MODELS_DIR": str(other)})
    assert flag_wins.server.models_dir == str(folder)
    assert load_config(Flags(), {**env, "TRINFER_MODELS_DIR": ""}).server.models_dir is None  # empty = unset


def test_with_a_models_dir_the_embedded_default_loads_on_demand_or_is_left_out(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.llamacpp import defaults

    table = {"name": "smollm2", "kind": "llamacpp", "models": ["smollm2"], "model_path": "/nowhere.gguf"}
    monkeypatch.setattr(defaults, "default_backends", lambda models_dir=None: [dict(table)])
    config = load_config(Flags(models_dir=str(folder)), {})
    first = config.backends[0]
    assert (first.name, first.load) == ("smollm2", "on_demand")

    def missing(models_dir: str | None = None) -> list[dict[str, Any]]:
        raise defaults.BackendConfigError("llama-cpp-python is not installed")

    monkeypatch.setattr(defaults, "default_backends", missing)
    assert [b.name for b in load_config(Flags(models_dir=str(folder)), {}).backends] == [
        "chatty", "minilm", "qwen-embed"
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="not installed"):
        load_config(Flags(), {})


def test_the_cli_names_a_bad_models_dir_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--backend", "mock", "--models-dir", str(tmp_path / "nope")], env={}) == 2
    assert capsys.readouterr().err.strip().endswith("nope' is not a directory")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot read it"),
        (b"GGUF\x01\x00\x00\x00", "GGUF version 1 is too old"),
        (b"GGUF\x03\x00\x00\x00\x00", "its header ends early"),
        (b"GGUF\x03\x00\x00\x00" + (0).to_bytes(8, "little") + (1).to_bytes(8, "little")
         + (1).to_bytes(8, "little") + b"k" + (99).to_bytes(4, "little"), "unknown metadata type 99"),
        (b"GGUF\x03\x00\x00\x00" + (0).to_bytes(8, "little") + (0).to_bytes(8, "little"),
         "no general.architecture metadata"),
    ],
)  # fmt: skip
def test_unreadable_files_say_why(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(UnreadableGguf, match=message):
        read_kind(path)


def test_a_header_cut_inside_its_token_list_is_unreadable(tmp_path: Path) -> None:
    whole = write_gguf(tmp_path / "whole.gguf", vocab=2000).read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UnreadableGguf, match="its header ends early"):
        read_kind(cut)
    assert read_kind(tmp_path / "whole.gguf") is GgufKind.CHAT
    assert read_kind(write_gguf(tmp_path / "nomic.gguf", "nomic-bert")) is GgufKind.EMBEDDING

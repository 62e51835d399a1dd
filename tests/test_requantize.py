"""Derived GGUFs (bot/llm/requantize.py) and the batched engine's ``batch_format``.

On the real embedded model (Q4_1), rewritten as Q8_0 (the smaller of the two types that make
batching pay) into a temporary model cache: never into the repository or ~/.cache.
"""

from __future__ import annotations

import json
import os

import pytest

from bot.errors import ConfigError, ModelError
from bot.llm.base import Sampling
from bot.llm.batch_engine import BatchedEngine
from bot.llm.batched import BatchedLlamaCppBackend, engine_key
from bot.llm.models import ModelSpec, inspect_gguf
from bot.llm.requantize import derived_gguf, model_cache_home
from tests.llm_fixtures import REPLY_SCHEMA, SELLER_MESSAGES, check_reply, embedded_gguf


@pytest.fixture
def cache(tmp_path, monkeypatch):
    home = tmp_path / "models"
    monkeypatch.setenv("HAGGLE_MODEL_CACHE", str(home))
    return home


def test_the_cache_lives_beside_the_data_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("HAGGLE_MODEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert model_cache_home() == tmp_path / "haggle" / "models"
    monkeypatch.setenv("HAGGLE_MODEL_CACHE", str(tmp_path / "elsewhere"))
    assert model_cache_home() == tmp_path / "elsewhere"


def test_batch_format_is_a_batched_key_with_known_types(tmp_path):
    spec = ModelSpec.from_table("m", {"backend": "llamacpp-batched", "batch_format": "F16"}, tmp_path)
    assert spec.batch_format == "F16"
    plain = ModelSpec.from_table("m", {"backend": "llamacpp-batched"}, tmp_path)
    assert engine_key(spec, tmp_path) != engine_key(plain, tmp_path)  # not one shared engine
    with pytest.raises(ConfigError, match="models.m.batch_format: 'Q5_K' is not one of F16, "):
        ModelSpec(name="m", backend="llamacpp-batched", batch_format="Q5_K")
    with pytest.raises(ConfigError, match="models.m.batch_format: not used by backend 'llamacpp'"):
        ModelSpec.from_table("m", {"batch_format": "F16"}, tmp_path)


def test_a_derived_file_is_written_once_recorded_and_rewritten_when_it_changes(cache):
    shipped = inspect_gguf(embedded_gguf())
    assert shipped.quantization == "Q4_1"
    assert derived_gguf(shipped, "Q4_1", home=cache) == shipped.path  # already that type
    assert not cache.exists()
    path = derived_gguf(shipped, "Q8_0", home=cache)
    assert path.parent == cache and shipped.sha256[:16] in path.name
    info = inspect_gguf(path)
    assert info.quantization == "Q8_0" and info.parameters == shipped.parameters
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["source_sha256"] == shipped.sha256 and record["sha256"] == info.sha256
    assert record["bytes"] == path.stat().st_size and record["format"] == "Q8_0"
    written = path.stat().st_mtime_ns
    assert derived_gguf(shipped, "Q8_0", home=cache) == path
    assert path.stat().st_mtime_ns == written  # from the cache, not written again
    with path.open("r+b") as handle:  # other bytes, same size: no longer the recorded file
        handle.seek(path.stat().st_size // 2)
        handle.write(b"\xff" * 64)
    os.utime(path, ns=(written, written))
    assert derived_gguf(shipped, "Q8_0", home=cache) == path
    assert inspect_gguf(path).sha256 == record["sha256"]  # written again
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == \
        sorted([path.name, path.with_suffix(".json").name])  # no partial file left behind


def test_an_unwritable_cache_says_what_to_do(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ModelError, match="set HAGGLE_MODEL_CACHE to a writable folder"):
        derived_gguf(inspect_gguf(embedded_gguf()), "Q8_0", home=blocker / "models")


async def test_the_batched_engine_runs_its_batch_format(cache):
    shipped = embedded_gguf()
    engine = BatchedEngine("embedded", name="smol-q8", n_slots=2, n_ctx=512, n_threads=1, seed=0,
                           batch_format="Q8_0")
    seat = BatchedLlamaCppBackend(engine, name="seat", timeout_s=120)
    try:
        reply = await seat.chat(SELLER_MESSAGES, schema=REPLY_SCHEMA,
                                sampling=Sampling(temperature=0.7, max_tokens=60, seed=7))
        assert engine.model_path.parent == cache and engine.model_path != shipped
        assert inspect_gguf(engine.model_path, sha256=False).quantization == "Q8_0"
        check_reply(json.loads(reply.text))
    finally:
        await seat.aclose()
        engine.close()

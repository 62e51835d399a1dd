"""A trained model folder's GGUF is checked against its manifest (size and sha256) on the path
that loads it: a file overwritten after `haggle train verify` is refused at load, through the
config, unless force_unverified = true. The hash is cached per file identity."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from llm_fixtures import write_tiny_gguf

from bot.config import parse_config
from bot.errors import ModelError


def _folder(root: Path) -> Path:
    """A model folder as `haggle train all` leaves it, its one file verified."""
    folder = root / "seller"
    folder.mkdir()
    gguf = write_tiny_gguf(folder / "seller.Q8_0.gguf")
    data = gguf.read_bytes()
    (folder / "manifest.json").write_text(json.dumps({
        "schema": 1, "name": "seller", "dataset": {"role": "seller"},
        "files": [{"name": gguf.name, "bytes": len(data), "type": "Q8_0", "verified": True,
                   "sha256": hashlib.sha256(data).hexdigest()}],
        "verify": {"results": [{"file": gguf.name, "agreement": 0.99, "min_agreement": 0.75}]}}))
    return folder


def _overwrite_same_size(gguf: Path, *, keep_mtime: bool = False) -> None:
    """Other bytes, same size: the last float of the norm tensor, 1.0 -> 2.0."""
    before = gguf.stat()
    data = bytearray(gguf.read_bytes())
    assert data[-4:] == bytes.fromhex("0000803f")
    data[-4:] = bytes.fromhex("00000040")
    gguf.write_bytes(bytes(data))
    assert gguf.stat().st_size == before.st_size
    if keep_mtime:  # as `cp -p` or `touch -r` would leave it
        os.utime(gguf, ns=(before.st_atime_ns, before.st_mtime_ns))


def _spec(root: Path, **table):
    cfg = parse_config({"models": {"ft": {"path": "seller", **table}}}, root / "config.toml")
    return cfg.models["ft"]


async def _load(spec) -> None:
    from bot.llm.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend.from_spec(spec)
    try:
        await backend.load()
    finally:
        await backend.aclose()


@pytest.mark.parametrize("keep_mtime", [False, True])
async def test_a_same_size_overwritten_gguf_is_refused_at_load(tmp_path, keep_mtime):
    pytest.importorskip("llama_cpp")
    folder = _folder(tmp_path)
    gguf = folder / "seller.Q8_0.gguf"
    spec = _spec(tmp_path)
    assert spec.path == str(gguf) and spec.manifest_file.sha256
    # intact: the manifest check passes, and llama.cpp itself refuses this 2-tensor stand-in
    with pytest.raises(ModelError, match="llama.cpp could not load"):
        await _load(spec)
    _overwrite_same_size(gguf, keep_mtime=keep_mtime)
    spec = _spec(tmp_path)  # config loading compares sizes only: it still loads
    with pytest.raises(ModelError) as refused:
        await _load(spec)
    message = str(refused.value)
    assert f"{gguf} differs from the file that was verified (sha256 mismatch" in message
    assert f"haggle train verify --role seller --out {folder}" in message
    assert "force_unverified = true" in message


async def test_force_unverified_runs_a_changed_file_with_a_warning(tmp_path, caplog):
    pytest.importorskip("llama_cpp")
    folder = _folder(tmp_path)
    _overwrite_same_size(folder / "seller.Q8_0.gguf")
    with pytest.raises(ModelError, match="llama.cpp could not load"):  # past the check
        await _load(_spec(tmp_path, force_unverified=True))
    assert "sha256 mismatch" in caplog.text and "running it anyway" in caplog.text


def test_a_tournament_refuses_a_changed_model_folder_at_its_probe(tmp_path, capsys):
    pytest.importorskip("llama_cpp")
    from bot.cli import main

    folder = _folder(tmp_path)
    _overwrite_same_size(folder / "seller.Q8_0.gguf")
    config = tmp_path / "config.toml"
    config.write_text('[models.ft]\npath = "seller"\n'
                      '[agents.rule-buyer]\nkind = "rule"\nrole = "buyer"\n'
                      '[agents.ft-seller]\nkind = "llm"\nrole = "seller"\nmodel = "ft"\n')
    rc = main(["tournament", "--config", str(config), "--buyers", "rule-buyer", "--sellers",
               "ft-seller", "--scenario-set", "agreemate", "--scenarios", "2", "--db",
               str(tmp_path / "t.db"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "model 'ft'" in err and "failed its probe" in err
    assert "sha256 mismatch" in err and "haggle train verify" in err


def test_the_check_is_cached_per_file_identity(tmp_path, monkeypatch):
    from bot.llm.adapters import check_manifest_file

    folder = _folder(tmp_path)
    gguf = folder / "seller.Q8_0.gguf"
    expected = _spec(tmp_path).manifest_file
    assert check_manifest_file(expected) == gguf  # hashes once
    hashed = []
    real = hashlib.file_digest

    def counting(*args, **kwargs):
        hashed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "file_digest", counting)
    for _ in range(3):
        assert check_manifest_file(expected) == gguf
    assert hashed == []  # the hot path: one stat each
    st = gguf.stat()
    os.utime(gguf, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime, new ctime: hashed again
    assert check_manifest_file(expected) == gguf and hashed == [1]

"""Trained model folders as model references: manifest -> verified GGUF, refusals, config keys."""

from __future__ import annotations

import hashlib
import json

import pytest

from bot.config import parse_config
from bot.errors import ConfigError, ModelError
from bot.llm.adapters import resolve_model_folder
from bot.llm.models import ModelSpec, resolve_model


def make_folder(root, files, name="seller"):
    """A model folder as `haggle train all` leaves it: GGUF stand-ins and a manifest.

    ``files``: (type, verified) pairs; each file holds distinct bytes.
    """
    folder = root / name
    folder.mkdir()
    entries, results = [], []
    for file_type, verified in files:
        path = folder / f"{name}.{file_type}.gguf"
        path.write_bytes(b"GGUF" + file_type.encode() * 10)
        entries.append({"name": path.name, "bytes": path.stat().st_size,
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "type": file_type, "verified": verified})
        if verified is not None:
            results.append({"file": path.name, "agreement": 0.99 if verified else 0.41,
                            "min_agreement": 0.75})
    (folder / "manifest.json").write_text(json.dumps(
        {"schema": 1, "name": name, "files": entries, "verify": {"results": results}}))
    return folder


def test_default_is_the_best_verified_quantized_file(tmp_path):
    folder = make_folder(tmp_path, [("F16", True), ("Q4_K_M", True), ("Q8_0", True)])
    assert resolve_model_folder(folder).name == "seller.Q8_0.gguf"
    assert resolve_model(folder).name == "seller.Q8_0.gguf"  # any reference site resolves it


def test_unverified_files_are_skipped_and_f16_is_the_last_resort(tmp_path):
    folder = make_folder(tmp_path, [("F16", True), ("Q4_K_M", True), ("Q8_0", False)])
    assert resolve_model_folder(folder).name == "seller.Q4_K_M.gguf"
    other = make_folder(tmp_path, [("F16", True), ("Q8_0", None)], name="buyer")
    assert resolve_model_folder(other).name == "buyer.F16.gguf"


def test_a_failed_file_is_refused_unless_forced(tmp_path):
    folder = make_folder(tmp_path, [("F16", True), ("Q4_K_M", False)])
    with pytest.raises(ModelError, match=r"failed verification \(top-1 agreement 0.41, needs 0.75\)") as err:
        resolve_model_folder(folder, quant="Q4_K_M")
    assert "force_unverified = true" in str(err.value)
    assert resolve_model_folder(folder, quant="Q4_K_M", force_unverified=True).name == \
        "seller.Q4_K_M.gguf"


def test_nothing_verified_is_refused_with_what_to_run(tmp_path):
    folder = make_folder(tmp_path, [("F16", None), ("Q8_0", None)])
    with pytest.raises(ModelError, match="haggle train verify"):
        resolve_model_folder(folder)
    assert resolve_model_folder(folder, force_unverified=True).name == "seller.Q8_0.gguf"


def test_unknown_quant_lists_what_there_is(tmp_path):
    folder = make_folder(tmp_path, [("Q8_0", True)])
    with pytest.raises(ModelError, match=r"no Q5_K_M file \(it has: seller.Q8_0.gguf \(Q8_0, passed\)"):
        resolve_model_folder(folder, quant="Q5_K_M")


def test_missing_or_changed_files_are_refused(tmp_path):
    folder = make_folder(tmp_path, [("Q8_0", True)])
    gguf = folder / "seller.Q8_0.gguf"
    gguf.write_bytes(gguf.read_bytes()[::-1])  # same size, other bytes
    with pytest.raises(ModelError, match="sha256 mismatch"):
        resolve_model_folder(folder)
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="is not the file that was verified"):
        resolve_model_folder(folder)
    gguf.unlink()
    with pytest.raises(ModelError, match="not on disk.*haggle train all"):
        resolve_model_folder(folder)
    # Config loading reads the manifest only: a fresh clone has no GGUFs yet.
    assert resolve_model_folder(folder, check_file=False) == gguf


def test_folders_that_are_not_trained_models(tmp_path):
    with pytest.raises(ModelError, match="no manifest.json"):
        resolve_model_folder(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot be read as JSON"):
        resolve_model_folder(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": 1}))
    with pytest.raises(ModelError, match="lists no GGUF files.*haggle train export"):
        resolve_model_folder(tmp_path)


@pytest.mark.parametrize("schema", [2, None, "1"])
def test_a_manifest_of_an_unknown_schema_is_refused_by_bot_and_training(tmp_path, schema):
    from training.manifest import read_manifest as training_read_manifest

    folder = make_folder(tmp_path, [("Q8_0", True)])  # valid, then its schema changed
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["schema"] = schema
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for read in (resolve_model_folder, training_read_manifest):
        with pytest.raises(ModelError, match=rf"manifest schema {schema!r}; this haggle reads "
                                             r"schema 1"):
            read(folder)


def test_config_names_the_folder_and_chooses_a_quant(tmp_path):
    make_folder(tmp_path, [("F16", True), ("Q4_K_M", True), ("Q8_0", True)])
    raw = {"models": {"seller-ft": {"path": "seller"},
                      "seller-q4": {"path": "seller", "quant": "Q4_K_M"}},
           "agents": {"seller-ft": {"kind": "llm", "role": "seller", "model": "seller-ft"}}}
    cfg = parse_config(raw, tmp_path / "config.toml")
    assert cfg.models["seller-ft"].path == str(tmp_path / "seller" / "seller.Q8_0.gguf")
    assert cfg.models["seller-q4"].path == str(tmp_path / "seller" / "seller.Q4_K_M.gguf")
    assert cfg.models["seller-q4"].quant == "Q4_K_M"


def test_config_errors_name_the_model_key(tmp_path):
    make_folder(tmp_path, [("F16", True), ("Q4_K_M", False)])
    with pytest.raises(ConfigError, match=r"models\.ft\.path: .*failed verification"):
        ModelSpec.from_table("ft", {"path": "seller", "quant": "Q4_K_M"}, tmp_path)
    spec = ModelSpec.from_table("ft", {"path": "seller", "quant": "Q4_K_M",
                                       "force_unverified": True}, tmp_path)
    assert spec.path.endswith("seller.Q4_K_M.gguf") and spec.force_unverified
    with pytest.raises(ConfigError, match=r"models\.ft\.quant: chooses a file of a trained model"):
        ModelSpec.from_table("ft", {"path": "embedded", "quant": "Q8_0"}, tmp_path)
    with pytest.raises(ConfigError, match=r"models\.ft\.force_unverified: must be true or false"):
        ModelSpec.from_table("ft", {"path": "embedded", "force_unverified": "yes"}, tmp_path)
    with pytest.raises(ConfigError, match=r"models\.ft\.quant: not used by backend 'openai'"):
        ModelSpec.from_table("ft", {"backend": "openai", "url": "http://x", "quant": "Q8_0"})

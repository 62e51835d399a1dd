"""Chat-example files and manifests: validation and atomic writes (no torch needed)."""

import json

import pytest

from bot.errors import DataError
from training.examples import read_chat_jsonl
from training.manifest import read_manifest, sha256_file, update_manifest, write_json_atomic

GOOD = {"messages": [{"role": "system", "content": "You sell a lamp."},
                     {"role": "user", "content": "$20?"},
                     {"role": "assistant", "content": "$35."}]}


def write_lines(path, *rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_reads_examples_and_skips_blank_lines(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", GOOD, "", GOOD)
    assert read_chat_jsonl(path) == [GOOD["messages"], GOOD["messages"]]


@pytest.mark.parametrize("row,message", [
    ("{not json", r"d\.jsonl:2: not valid JSON"),
    ({"msgs": []}, r"d\.jsonl:2: expected"),
    ({"messages": [{"role": "bot", "content": "hi"}]}, r"d\.jsonl:2: message 0 must be"),
    ({"messages": [{"role": "user", "content": 5}]}, r"d\.jsonl:2: message 0 must be"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, r"d\.jsonl:2: the first message"),
    ({"messages": [{"role": "user", "content": "hi"}]}, r"d\.jsonl:2: no assistant message"),
])
def test_bad_lines_are_named_by_file_and_line(tmp_path, row, message):
    path = write_lines(tmp_path / "d.jsonl", GOOD, row)
    with pytest.raises(DataError, match=message):
        read_chat_jsonl(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="haggle train data"):
        read_chat_jsonl(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no examples"):
        read_chat_jsonl(tmp_path / "empty.jsonl")


def test_manifest_sections_are_updated_in_place(tmp_path):
    update_manifest(tmp_path, name="seller", fit={"steps": 3})
    update_manifest(tmp_path, files=[{"name": "seller.F16.gguf"}])
    data = read_manifest(tmp_path)
    assert data["schema"] == 1 and data["name"] == "seller" and data["fit"] == {"steps": 3}
    assert data["files"] == [{"name": "seller.F16.gguf"}]
    assert "updated" in data


def test_a_failed_write_keeps_the_old_manifest_and_leaves_no_temp_file(tmp_path):
    update_manifest(tmp_path, name="seller")
    before = (tmp_path / "manifest.json").read_text()
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "manifest.json", {"bad": object()})
    assert (tmp_path / "manifest.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_sha256_of_a_file(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")

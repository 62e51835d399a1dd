import pytest

from bot.hub import HubError, is_hub_ref, parse_hub_ref, resolve


def test_model_and_dataset_references():
    ref = parse_hub_ref("hf://bartowski/Llama-3.2-3B-Instruct-GGUF/Llama-3.2-3B-Instruct-Q4_K_M.gguf")
    assert (ref.repo_id, ref.filename, ref.repo_type, ref.revision) == (
        "bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf", "model", None)
    ds = parse_hub_ref("hf://datasets/owner/repo@v1.0/data/train.json")
    assert (ds.repo_type, ds.revision, ds.filename) == ("dataset", "v1.0", "data/train.json")


def test_revision_with_a_slash_is_percent_encoded():
    text = "hf://datasets/o/r@refs%2Fconvert%2Fparquet/default/train/0000.parquet"
    ref = parse_hub_ref(text)
    assert ref.revision == "refs/convert/parquet" and ref.filename == "default/train/0000.parquet"
    assert str(ref) == text


@pytest.mark.parametrize("bad", ["hf://owner/repo", "hf://owner//file.gguf", "hf://datasets/o/r", "owner/repo/f"])
def test_malformed_references_are_clear_errors(bad):
    with pytest.raises(HubError, match="hf://"):
        parse_hub_ref(bad)


def test_local_paths_resolve_relative_to_a_base(tmp_path):
    assert not is_hub_ref(tmp_path)
    assert resolve("models/x.gguf", base_dir=tmp_path) == tmp_path / "models/x.gguf"

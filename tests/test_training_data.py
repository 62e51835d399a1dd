"""`haggle train data`: role examples in the serving prompt format, what is trained, what is
left out and why, and the split by dialogue. No torch needed (token lengths aside)."""

from __future__ import annotations

import json

import pytest

from bot.datasets import Dialogue, DialogueTurn, load_craigslist
from bot.errors import ConfigError, DataError
from bot.negotiation.prompts import build_messages, parse_reply, reply_schema, schema_acts
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import Act, Role
from tests.conftest import shared_file
from training.data import (
    DealDialogue,
    Report,
    build_examples,
    deal_act,
    detokenize,
    in_eval,
    read_deal_file,
    resolve_dialogue,
    split_examples,
)
from training.examples import check_messages, is_trained

SCENARIO = Scenario.build(id="cb-lamp", title="Desk lamp", listing_price=100, buyer_target=60,
                          seller_target=100, description="Brass, works.")


def T(role, act, price, text):
    return DialogueTurn(Role(role), Act(act) if act else None, price, text)


def dialogue(*turns, sid="cb-lamp"):
    return Dialogue(scenario=SCENARIO.__class__(**{**SCENARIO.to_dict(), "id": sid}),
                    turns=tuple(turns), line=1)


HAGGLE = dialogue(
    T("buyer", "intro", None, "hi, is the lamp still for sale?"),
    T("seller", "unknown", None, "Yes it is! It works great."),  # label unknown -> parser
    T("buyer", "init-price", 60, "would you take 60?"),
    T("seller", "counter-price", 90, "I could do 90."),
    T("buyer", "counter-price", 80, "ok, 80 then?"),
    T("seller", "agree", 80, "80 works for me"),            # agree with a price: schema drops it
    T("seller", "unknown", None, "I'll send the offer"),
    T("seller", "offer", 80, ""),                            # formal offer after own words: merged
    T("buyer", "accept", None, ""),                          # formal accept after the other's turn
)


def build(role, *dialogues, **kw):
    return build_examples(role, "validation", craigslist=list(dialogues),
                          craigslist_source="test", **kw)


def test_formal_offer_is_merged_into_the_same_speakers_words():
    report = Report("seller", "validation")
    turns = resolve_dialogue(HAGGLE, report)
    assert len(turns) == 8
    merged = turns[6]
    assert (merged.role, merged.act, merged.price, merged.utterance) == (
        Role.SELLER, Act.OFFER, 80, "I'll send the offer")
    assert turns[7].act is Act.ACCEPT and turns[7].utterance == ""
    assert report.formal["merged into the same speaker's turn before it"] == 1
    assert report.formal["kept as context (no words of its own)"] == 1
    # An unknown label is no label: the parser reads the words.
    assert turns[1].act is Act.INFORM and report.act_source == {"label": 5, "parser": 2}
    # reply_schema(): an agree carries no price (the text may restate the standing offer).
    assert turns[5].act is Act.AGREE and turns[5].price is None


def test_every_prompt_is_the_one_serving_would_send():
    (example,), _ = build("seller", HAGGLE)
    messages = check_messages(example["messages"], "example")
    turns = resolve_dialogue(HAGGLE, Report("seller", "validation"))
    for k, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        before = sum(1 for m in messages[:k] if m["role"] == "assistant")
        upto = [i for i, t in enumerate(turns) if t.role is Role.SELLER][before]
        served = build_messages(SCENARIO, Role.SELLER, turns[:upto])
        assert [{"role": m["role"], "content": m["content"]} for m in messages[:k]] == served
        reply = parse_reply(msg["content"])  # and the target is a reply the grammar allows
        assert reply.act.value in schema_acts(reply_schema())


def test_seller_targets_and_buyer_context():
    (seller,), report = build("seller", HAGGLE)
    replies = [json.loads(m["content"]) for m in seller["messages"] if is_trained(m)]
    assert [r["act"] for r in replies] == ["inform", "counter-price", "agree", "offer"]
    assert replies[-1] == {"act": "offer", "price": 80, "utterance": "I'll send the offer"}
    assert report.turns == {"trained": 4}
    (buyer,), report = build("buyer", HAGGLE)
    # The buyer's formal accept has no words: the example ends at its last reply with words.
    replies = [json.loads(m["content"]) for m in buyer["messages"] if m["role"] == "assistant"]
    assert replies[-1] == {"act": "counter-price", "price": 80, "utterance": "ok, 80 then?"}
    assert buyer["messages"][-1]["role"] == "assistant"
    assert report.turns == {"trained": 3, "context only: formal action with no words": 1}


def test_turns_a_served_model_must_not_imitate_stay_as_untrained_context():
    d = dialogue(
        T("buyer", "init-price", 50, "50?"),
        T("seller", "unknown", None, "lol"),                          # unknown to the parser too
        T("seller", "counter-price", 90, "I want 95 for it"),          # words say another price
        T("buyer", "counter-price", 70, "70"),
        T("seller", "counter-price", 85, "85 is my best"),
    )
    (example,), report = build("seller", d)
    flags = [is_trained(m) for m in example["messages"] if m["role"] == "assistant"]
    assert flags == [False, False, True]
    assert report.turns["context only: act unknown to label and parser"] == 1
    assert report.turns["context only: text states a price the turn does not carry"] == 1


def test_dialogues_are_cut_at_the_serving_turn_cap():
    turns = [T("buyer" if i % 2 == 0 else "seller", "counter-price", 60 + i, f"how about {60 + i}")
             for i in range(20)]
    (example,), report = build("seller", dialogue(*turns), max_turns=15)
    assert sum(1 for m in example["messages"] if m["role"] == "assistant") == 7
    assert report.turns["cut: past the turn cap"] == 3
    assert example["messages"][-2]["content"].startswith("[turn 13 of 15, 2 left after it]")


def test_a_role_without_examples_is_a_clear_error():
    only_buyer = dialogue(T("buyer", "intro", None, "hello"), T("buyer", "init-price", 50, "50?"))
    with pytest.raises(DataError, match="no seller example"):
        build("seller", only_buyer)
    with pytest.raises(DataError, match="unknown role"):
        build("broker", only_buyer)


def test_split_is_by_dialogue_stable_and_keeps_both_sides_together():
    dialogues = [dialogue(*HAGGLE.turns, sid=f"cb-{i:04d}") for i in range(200)]
    examples, _ = build("generalist", *dialogues)
    assert len(examples) == 400
    train, held = split_examples(examples, 0.1, seed=0)
    held_ids = {e["id"] for e in held}
    assert held_ids.isdisjoint({e["id"] for e in train})
    assert all(sum(1 for e in held if e["id"] == i) == 2 for i in held_ids)  # both sides
    assert 8 <= len(held_ids) <= 35
    assert held == split_examples(list(reversed(examples)), 0.1, seed=0)[1][::-1]  # order-free
    assert {e["id"] for e in split_examples(examples, 0.1, seed=1)[1]} != held_ids
    assert not in_eval("cb-0001", 0.0, 0)


def test_deal_or_no_deal_lines_and_examples(tmp_path):
    lines = [
        ("<input> 1 4 4 1 1 2 </input> <dialogue> THEM: i would like 4 hats and you can have the "
         "rest . <eos> YOU: deal <eos> THEM: <selection> </dialogue> <output> item0=1 item1=0 "
         "item2=1 item0=0 item1=4 item2=0 </output> <partner_input> 1 0 4 2 1 2 </partner_input>"),
        ("<input> 1 0 4 2 1 2 </input> <dialogue> YOU: i would like 4 hats and you can have the "
         "rest . <eos> THEM: deal <eos> YOU: <selection> </dialogue> <output> item0=0 item1=4 "
         "item2=0 item0=1 item1=0 item2=1 </output> <partner_input> 1 4 4 1 1 2 </partner_input>"),
        "garbage",
    ]
    path = tmp_path / "val.txt"
    path.write_text("\n".join(lines) + "\n")
    deals, bad = read_deal_file(path)
    assert bad == [(3, "not <input> c0 v0 c1 v1 c2 v2 </input> <dialogue> ... </dialogue>")]
    a, b = deals
    assert (a.counts, a.values, a.agreed) == ((1, 4, 1), (4, 1, 2), True)
    assert a.key == b.key  # one dialogue, two points of view: same side of the split
    examples, report = build("generalist", HAGGLE, deal=deals, deal_source="dnd")
    dnd = [e for e in examples if e["source"] == "dnd"]
    assert len(dnd) == 2
    first = dnd[0]["messages"]
    assert "Items: 1 book, 4 hats and 1 ball." in first[0]["content"]
    assert "books 4 points each" in first[0]["content"]
    assert first[1]["content"].endswith('Them: "i would like 4 hats and you can have the rest."')
    assert json.loads(first[2]["content"]) == {"act": "accept", "price": None, "utterance": "deal"}
    assert json.loads(dnd[1]["messages"][2]["content"])["act"] == "inform"  # a proposed split
    assert report.formal["dropped: Deal or No Deal <selection> (no words)"] == 2
    assert parse_reply(first[2]["content"]).price is None


def test_deal_acts_and_detokenizing():
    assert detokenize("i can't do that . ok ?") == "i can't do that. ok?"
    assert deal_act("no deal") is Act.REJECT
    assert deal_act("what do you need ?") is Act.INQUIRE
    assert deal_act("i need the hats and the ball") is Act.INFORM
    assert isinstance(DealDialogue(1, (1, 1, 1), (1, 1, 1), (), False).key, str)


def test_on_the_validation_split_every_example_is_well_formed():
    dialogues = load_craigslist(shared_file("craigslist_bargains", "validation.json"))
    examples, report = build("seller", *dialogues)
    assert report.dialogues["used (seller side)"] == len(examples) > 500
    trained = 0
    for e in examples:
        messages = check_messages(e["messages"], e["id"])
        assert messages[-1]["role"] == "assistant" and is_trained(messages[-1])
        for m in messages:
            if is_trained(m):
                reply = parse_reply(m["content"])
                assert reply.utterance and len(reply.utterance) <= 240
                trained += 1
    assert trained == report.turns["trained"]


# --------------------------------------------------------------------------- the command

def test_haggle_train_data_writes_examples_eval_and_report(tmp_path, monkeypatch):
    pytest.importorskip("transformers")  # token lengths use the base model's tokenizer
    from bot.cli import main
    from tests.llm_fixtures import embedded_gguf

    embedded_gguf()
    source = shared_file("craigslist_bargains", "validation.json")
    small = tmp_path / "cb.json"
    small.write_text("".join(source.read_text().splitlines(keepends=True)[:80]))
    out = tmp_path / "seller.jsonl"
    monkeypatch.chdir(tmp_path)
    rc = main(["train", "data", "--role", "seller", "--split", "validation", "--data", str(small),
               "--out", str(out), "--set", "eval_fraction=0.2"])
    assert rc == 0
    report = json.loads((tmp_path / "seller.report.json").read_text())
    assert report["examples"]["train"] == sum(1 for _ in out.open())
    assert report["examples"]["eval"] == sum(1 for _ in (tmp_path / "seller.eval.jsonl").open()) > 0
    assert report["sources"][0]["dialogues"] == 80
    assert report["tokens"]["min"] > 100 and report["tokens"]["max"] >= report["tokens"]["median"]


def test_train_split_needs_a_source_and_bad_settings_name_the_key(tmp_path, monkeypatch):
    from bot.cli import main

    cfg = tmp_path / "config.toml"
    cfg.write_text('[training]\nlora_r = 8\n')
    monkeypatch.chdir(tmp_path)
    args = ["train", "data", "--role", "seller", "--config", str(cfg)]
    from bot.cli import build_parser
    from bot.commands.train import load_settings

    # the train split: [data] craigslist_train, else the data cache (empty in the tests)
    with pytest.raises(DataError, match=r"`haggle data fetch craigslist:train`, or set \[data\] "
                                        "craigslist_train"):
        from bot.commands.train import stage_data

        parsed = build_parser().parse_args(args)
        stage_data(*load_settings(parsed), parsed)
    parsed = build_parser().parse_args(args + ["--set", "lora_rank=4"])
    with pytest.raises(ConfigError, match=r"training\.lora_rank"):
        load_settings(parsed)
    parsed = build_parser().parse_args(args + ["--set", "learning_rate=1e-4", "--max-steps", "7"])
    _, train_cfg = load_settings(parsed)
    assert (train_cfg.lora_r, train_cfg.learning_rate, train_cfg.max_steps) == (8, 1e-4, 7)
    assert main(args + ["--set", "oops"]) == 2  # a HaggleError: message, exit code 2


def test_training_section_takes_a_relative_base_from_the_config_folder(tmp_path):
    from training.config import training_section

    cfg = training_section({"base": "models/base.gguf"}, "training", tmp_path)
    assert cfg.base == str(tmp_path / "models" / "base.gguf")
    assert training_section({"base": "embedded"}, "training", tmp_path).base == "embedded"
    assert training_section({}, "training", tmp_path).base == "embedded"

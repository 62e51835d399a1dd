"""The line reader: a logistic regression fit on the blind readings kept in docs/, and the
hybrid agent's ``pick = "reader"`` that says the passing candidate it scores highest."""

import json
import re
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.errors import ConfigError
from bot.llm.base import ChatResult, Sampling
from bot.llm.fake import FakeBackend
from bot.negotiation.agents import DialogueState
from bot.negotiation.line_reader import LineReader, reading_features
from bot.negotiation.llm_agent import LLMAgent
from bot.negotiation.policy import ConcessionPolicy
from bot.negotiation.turns import Act, Role, Turn
from training.line_reader import Judgment, fit, held_out_scores, load_readings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_features_mask_prices_and_carry_the_role_and_a_length_bin():
    f = reading_features("How about $1,250.50?", "buyer")
    assert "how about $p" in f and "about $p ?" in f and "role_buyer how about" in f
    assert not any(re.search(r"\d", re.sub(r"\blen\d\b", "", x)) for x in f)
    assert reading_features("How about $90?", "buyer") == reading_features("How about $1,250?", "buyer")
    assert reading_features("How about $90?", "seller") != reading_features("How about $90?", "buyer")
    assert "len0" in f and "len5" in reading_features("x " * 60, "buyer")  # bins of the masked length


_IDS = iter(range(1, 10_000))


def _judged(line, role, sensible, natural=4, reading="r", pair=None):
    return Judgment(reading, f"L{next(_IDS):03d}", role, line, sensible, natural, pair)


def test_the_fit_learns_what_readers_judged_and_ranks_held_out_pairs_by_it():
    rows = []
    for k in range(30):
        rows.append(_judged(f"I would like to do ${100 + k} for you.", "buyer", False, 2))
        rows.append(_judged(f"How about ${100 + k}?", "buyer", True, 4))
        rows.append(_judged(f"Would you take ${200 + k}?", "buyer", True, 4))
    reader = fit(rows)
    bad, good = reader.score("I would like to do $75 for you.", "buyer"), reader.score("How about $75?", "buyer")
    assert good > 0 > bad
    assert reader.fit["judgments"] == 90 and reader.fit["lines"] == 90 and reader.fit["target"] == "sensible"
    held = [_judged("I would like to do $5 for you.", "buyer", False, 2, "h", pair=1),
            _judged("How about $5?", "buyer", True, 4, "h", pair=1),
            _judged("Would you take $7?", "buyer", True, 5, "h", pair=2),
            _judged("Would you take $7 for you.", "buyer", True, 3, "h", pair=2)]
    scores = held_out_scores(reader, held)
    assert scores["pairs"] == 2 and scores["sensible_pairs_judged_apart"] == 1
    assert scores["sensible_reader_agrees"] == 1 and scores["natural_reader_agrees"] == 2
    assert scores["auc_sensible"] == 1.0


def test_a_fit_needs_judgments_of_both_kinds():
    with pytest.raises(SystemExit, match="nothing to fit"):
        fit([_judged("How about $5?", "buyer", True)])


def test_the_shipped_reader_is_the_fit_of_the_readings_in_docs():
    shipped = LineReader.load()
    refit = fit(load_readings(DOCS))
    assert refit.fit["data_sha256"] == shipped.fit["data_sha256"]
    assert refit.fit["judgments"] == shipped.fit["judgments"] > 6000
    # (weights under 1e-6 are left out of the file: compare over both, a missing one as 0)
    features = set(refit.weights) | set(shipped.weights)
    assert len(features) > 4000 and abs(refit.bias - shipped.bias) < 1e-4
    assert max(abs(refit.weights.get(f, 0.0) - shipped.weights.get(f, 0.0)) for f in features) < 1e-4
    # what the readers judged (2026-12-04 readings): a garbled counter scores below a plain one
    assert (shipped.score("That would be a bit lower than I am offering, but that's the lowest you can go $2,100.",
                          "seller") < shipped.score("The lowest I can go is $2,100.", "seller"))


def test_an_answer_to_no_line_of_the_sample_is_a_clear_error(tmp_path):
    from training.line_reader import readings

    (tmp_path / "narration-sample" / "r").mkdir(parents=True)
    (tmp_path / "narration-key" / "r").mkdir(parents=True)
    (tmp_path / "narration-sample" / "r" / "sample.jsonl").write_text(
        json.dumps({"id": "L001", "speaker": "buyer", "line": "How about $5?"}) + "\n", encoding="utf-8")
    (tmp_path / "narration-key" / "r" / "key.json").write_text(json.dumps({"L001": {"kind": "model"}}),
                                                                encoding="utf-8")
    judged = tmp_path / "narration-key" / "r" / "judged-r1.jsonl"
    judged.write_text(json.dumps({"id": "L001", "sensible": True, "natural": 4}) + "\n", encoding="utf-8")
    assert [r["line"] for r in readings(tmp_path)] == ["How about $5?"]
    with judged.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "LTEST", "sensible": False, "natural": 1}) + "\n")
    with pytest.raises(SystemExit, match="answer 'LTEST' is no line of"):
        readings(tmp_path)


def test_a_bad_reader_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the line reader"):
        LineReader.load(tmp_path / "missing.json")
    (tmp_path / "r.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not JSON"):
        LineReader.load(tmp_path / "r.json")
    (tmp_path / "r.json").write_text(json.dumps({"format": "haggle-line-reader/1", "ngrams": 2,
                                                 "length_bin": 15, "length_bins": 5,
                                                 "weights": {}, "bias": 0}), encoding="utf-8")
    with pytest.raises(ConfigError, match="refit it with `python -m training.line_reader"):
        LineReader.load(tmp_path / "r.json")
    reader = LineReader({"how about": 1.0}, -0.5, {"target": "sensible"})
    (tmp_path / "ok.json").write_text(json.dumps(reader.to_json()), encoding="utf-8")
    assert LineReader.load(tmp_path / "ok.json") == reader


def _state(scenario):
    return DialogueState(scenario, Role.SELLER, (Turn(Role.BUYER, Act.INIT_PRICE, 150, "would you take $150?"),), 15)


async def test_pick_reader_says_the_passing_candidate_the_reader_scores_highest(scenario):
    policy = ConcessionPolicy("fair", seed=0)
    p = f"${policy.plan(_state(scenario)).price:,.0f}"
    replies = [ChatResult(json.dumps({"utterance": f"I can do {p}, it rides great."}),
                          extra={"logprob": -1.0, "logprob_tokens": 10}),
               ChatResult(json.dumps({"utterance": f"The lowest I can go is {p}."}),
                          extra={"logprob": -9.0, "logprob_tokens": 10}),
               ChatResult(json.dumps({"utterance": f"The lowest I can go is {p} for your item in the ."}),
                          extra={"logprob": -1.0, "logprob_tokens": 10})]  # the reader's pick, fails
    reader = LineReader({"role_seller the lowest": 2.0, "rides": -1.0}, 0.0)
    for pick, said in (("reader", f"The lowest I can go is {p}."), ("likeliest", f"I can do {p}, it rides great.")):
        agent = LLMAgent("s", FakeBackend(list(replies)), policy=policy, candidates=3,
                         sampling=Sampling(seed=0), pick=pick, reader=reader)
        turn = await agent.respond(_state(scenario))
        assert not turn.fallback and turn.utterance == said
    with pytest.raises(ValueError, match="need the line reader"):
        LLMAgent("s", FakeBackend([]), policy=policy, candidates=3, pick="reader")
    with pytest.raises(ValueError, match="need the line reader"):
        LLMAgent("s", FakeBackend([]), policy=policy, candidates=3, reader_floor=0.5)


async def test_a_candidate_under_the_reader_floor_fails_and_with_none_left_the_template_is_said(scenario):
    policy = ConcessionPolicy("fair", seed=0)
    p = f"${policy.plan(_state(scenario)).price:,.0f}"
    liked, doubted = f"The lowest I can go is {p}.", f"I can take it off the table for {p}."
    reader = LineReader({"off the table": -3.0}, 1.0)  # chances 0.73 and 0.12
    replies = [ChatResult(json.dumps({"utterance": doubted}), extra={"logprob": -1.0, "logprob_tokens": 10}),
               ChatResult(json.dumps({"utterance": liked}), extra={"logprob": -9.0, "logprob_tokens": 10})]
    agent = LLMAgent("s", FakeBackend(list(replies)), policy=policy, candidates=2, sampling=Sampling(seed=0),
                     reader=reader, reader_floor=0.5)
    turn = await agent.respond(_state(scenario))
    assert not turn.fallback and turn.utterance == liked  # the likelier one is under the floor
    agent = LLMAgent("s", FakeBackend([replies[0]] * 2), policy=policy, candidates=2,
                     sampling=Sampling(seed=0), reader=reader, reader_floor=0.5)
    turn = await agent.respond(_state(scenario))
    assert turn.fallback and "reader: 0.12 < 0.5" in turn.guard


def test_an_agent_with_pick_reader_gets_the_shipped_reader(tmp_path):
    from bot.agent_factory import AgentFactory
    from bot.llm.pool import ModelPool

    cfg = parse_config({"models": {"m": {"backend": "openai", "url": "http://127.0.0.1:9/v1"}},
                        "agents": {"s": {"kind": "llm", "role": "seller", "model": "m", "policy": "hybrid",
                                         "candidates": 4, "pick": "reader"}}}, tmp_path / "config.toml")
    factory = AgentFactory(cfg, pool=ModelPool(cfg.models, factory=lambda spec: FakeBackend(name=spec.name)))
    agent = factory.build("s", "seller")
    assert agent.pick == "reader" and agent.reader == LineReader.load()
    with pytest.raises(ConfigError, match="pick"):
        parse_config({"agents": {"s": {"kind": "llm", "role": "seller", "pick": "best"}}}, tmp_path / "c.toml")
    floored = parse_config({"models": {"m": {"backend": "openai", "url": "http://127.0.0.1:9/v1"}},
                            "agents": {"s": {"kind": "llm", "role": "seller", "model": "m", "policy": "hybrid",
                                             "candidates": 4, "reader_floor": 0.5}}}, tmp_path / "config.toml")
    agent = AgentFactory(floored, pool=ModelPool(floored.models, factory=lambda spec: FakeBackend(
        name=spec.name))).build("s", "seller")
    assert agent.reader_floor == 0.5 and agent.reader == LineReader.load() and agent.pick == "likeliest"
    with pytest.raises(ConfigError, match="reader_floor"):
        parse_config({"agents": {"s": {"kind": "llm", "role": "seller", "policy": "hybrid",
                                       "reader_floor": 1.5}}}, tmp_path / "c.toml")

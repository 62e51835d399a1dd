"""A dead model is an error, never a result: backends are probed before a tournament starts, and
a negotiation whose model keeps failing is stored as an error that --retry-errors runs again.

The live backends here are real (nothing listens at the OpenAI url; llama.cpp refuses the GGUF);
the model that dies mid-negotiation is the scripted FakeBackend.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from llm_fixtures import free_port, write_tiny_gguf

from bot.cli import main
from bot.config import parse_config
from bot.errors import ModelError
from bot.negotiation.runner import Negotiation
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import Act, Outcome, Role, Turn
from bot.store import Store
from bot.tournament import plan_tournament, run_tournament

RULE_BUYER = '[agents.rule-buyer]\nkind = "rule"\nrole = "buyer"\n'


def _tournament(tmp_path: Path, models: str, capsys) -> tuple[int, str, int]:
    """`haggle tournament` of rule-buyer vs an LLM seller on model ``dead``: (exit status,
    stderr, negotiations stored)."""
    config = tmp_path / "config.toml"
    config.write_text(RULE_BUYER + models + '[agents.llm-seller]\nkind = "llm"\nrole = "seller"\n'
                      'model = "dead"\npolicy = "llm"\nseed = 0\n')
    db = tmp_path / "t.db"
    rc = main(["tournament", "--config", str(config), "--buyers", "rule-buyer", "--sellers",
               "llm-seller", "--scenario-set", "agreemate", "--scenarios", "3", "--db", str(db),
               "--no-progress"])
    err = capsys.readouterr().err
    stored = 0
    if db.exists():
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM negotiations").fetchone()[0]
    return rc, err, stored


def test_a_tournament_against_an_openai_url_where_nothing_listens_refuses_to_start(
        tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    rc, err, stored = _tournament(
        tmp_path, f'[models.dead]\nbackend = "openai"\nurl = "{url}"\ntimeout_s = 10\n', capsys)
    assert rc == 2 and stored == 0
    assert "model 'dead'" in err and "failed its probe" in err and url in err
    assert "cannot connect" in err and "Check that the server" in err


def test_a_gguf_llama_cpp_cannot_load_is_refused_at_probe(tmp_path, capsys):
    """The header reads (architecture llama, 2 tensors) but llama.cpp finds no layers in it."""
    pytest.importorskip("llama_cpp")
    gguf = write_tiny_gguf(tmp_path / "broken.gguf")
    rc, err, stored = _tournament(tmp_path, f'[models.dead]\npath = "{gguf}"\n', capsys)
    assert rc == 2 and stored == 0
    assert "model 'dead'" in err and "failed its probe" in err and "llama.cpp could not load" in err
    assert f"path = '{gguf}'" in err


def test_the_batched_backend_is_probed_too(tmp_path, capsys):
    """The batched backend answers the probe (a load) like the per-seat one: refused, not a crash."""
    pytest.importorskip("llama_cpp")
    gguf = write_tiny_gguf(tmp_path / "broken.gguf")
    models = f'[models.dead]\npath = "{gguf}"\nbackend = "llamacpp-batched"\nn_slots = 2\n'
    rc, err, stored = _tournament(tmp_path, models, capsys)
    assert rc == 2 and stored == 0
    assert "model 'dead'" in err and "failed its probe" in err and "llama.cpp could not load" in err


def test_a_truncated_gguf_is_refused_before_anything_runs(tmp_path, capsys):
    """Truncated tensor data: the gguf reader already refuses the header, before the probe."""
    whole = write_tiny_gguf(tmp_path / "whole.gguf")
    cut = tmp_path / "cut.gguf"
    shutil.copy(whole, cut)
    os.truncate(cut, whole.stat().st_size - 8)
    rc, err, stored = _tournament(tmp_path, f'[models.dead]\npath = "{cut}"\n', capsys)
    assert rc == 2 and stored == 0 and "corrupt or truncated" in err


# --------------------------------------------------------------------------- mid-negotiation


OPENERS = ("I'm asking", "I can do", "Meet me at", "The best I can do is", "Fine,", "Last offer:",
           "How about", "Let's say")


def _seller(messages, *, dies: bool):
    """The seller's model: opens at its target and concedes 10% of the gap each turn, accepting
    on its fifth turn; with ``dies`` its server is gone after the opening (HTTP 503)."""
    system = messages[0]["content"]
    listing = float(re.search(r"Listing price: \$([\d,.]+?)\.?\n", system).group(1).replace(",", ""))
    target = float(re.search(r"as close to \$([\d,.]+)", system).group(1).replace(",", ""))
    mine = sum(1 for m in messages if m["role"] == "assistant")
    if dies and mine >= 1:
        raise ModelError("dead: http://10.0.0.9/v1 answered HTTP 503: upstream unavailable")
    if mine >= 4:
        return json.dumps({"act": "accept", "price": None, "utterance": "Deal."})
    price = round(target + (0.6 * listing - target) * 0.1 * mine, 2)
    act = "init-price" if mine == 0 else "counter-price"
    return json.dumps({"act": act, "price": price, "utterance": f"{OPENERS[mine]} ${price:g}."})


def _factory(cfg, *, dies: bool):
    from bot.agent_factory import AgentFactory
    from bot.llm.fake import FakeBackend
    from bot.llm.pool import ModelPool

    def model(messages):
        return _seller(messages, dies=dies)

    made = []

    def backend(spec):
        made.append(FakeBackend(name=spec.name, default=model))
        return made[-1]

    return AgentFactory(cfg, pool=ModelPool(cfg.models, factory=backend)), made


async def test_a_model_that_dies_mid_negotiation_stores_errors_that_retry_errors_reruns(tmp_path):
    cfg = parse_config({
        "negotiation": {"max_model_failures": 2},
        "models": {"dead": {"backend": "openai", "url": "http://10.0.0.9/v1"}},
        "agents": {"rule-buyer": {"kind": "rule", "role": "buyer"},
                   "llm-seller": {"kind": "llm", "role": "seller", "model": "dead",
                                  "policy": "llm", "temperature": 0.0, "seed": 0}}}, None)
    plan = plan_tournament(cfg, buyers=["rule-buyer"], sellers=["llm-seller"],
                           scenario_set="agreemate", scenarios=4)
    async with await Store.open(tmp_path / "t.db") as store:
        factory, made = _factory(cfg, dies=True)
        stats = await run_tournament(cfg, plan, store, progress=False, factory=factory)
        assert made[0].probes == 1  # probed once, before the first negotiation
        assert (stats.ran, stats.errors, stats.deals) == (4, 4, 0)
        rows = await store.negotiations()
        turns = await store.turns()
        assert all(r.outcome == "error" and r.deal_price is None for r in rows)
        for row in rows:
            assert "seller agent 'llm-seller': its model failed on 2 turns in a row" in row.error
            assert "HTTP 503" in row.error
            seller = [t for t in turns[row.id] if t.role == "seller"]
            assert not seller[0].fallback and all(t.fallback for t in seller[1:])
        # healthy again: --retry-errors runs exactly those, and real results replace them
        healthy, _ = _factory(cfg, dies=False)
        again = await run_tournament(cfg, plan, store, progress=False, retry_errors=True,
                                     factory=healthy)
        assert (again.ran, again.errors, again.already_done) == (4, 0, 0)
        rows = await store.negotiations()
    assert len(rows) == 4 and not any(r.outcome == "error" for r in rows)


# --------------------------------------------------------------------------- the rule


SCENARIO = Scenario(id="s", title="lamp", listing_price=100.0, buyer_target=60.0,
                    seller_target=95.0, buyer_reservation=100.0, seller_reservation=70.0)


def _failed(role: Role, act: Act = Act.COUNTER_PRICE, price: float | None = 80.0) -> Turn:
    return Turn(role, act, price, "ok", fallback=True, model_failed=True,
                guard="fallback: model error: dead: cannot connect")


def test_k_consecutive_model_failures_void_the_negotiation():
    n = Negotiation(SCENARIO, buyer="b", seller="s", max_model_failures=2)
    n.apply(Turn(Role.BUYER, Act.INIT_PRICE, 60.0, "60?"))
    n.apply(_failed(Role.SELLER, price=95.0))
    n.apply(Turn(Role.BUYER, Act.COUNTER_PRICE, 65.0, "65?"))
    assert not n.done
    n.apply(_failed(Role.SELLER, price=90.0))
    assert n.outcome is Outcome.ERROR
    assert n.error.startswith("seller agent 's': its model failed on 2 turns in a row")
    assert "cannot connect" in n.error


def test_a_deal_made_only_of_fallback_turns_is_an_error_not_a_deal():
    n = Negotiation(SCENARIO, buyer="b", seller="s", max_model_failures=3)
    n.apply(Turn(Role.BUYER, Act.INIT_PRICE, 80.0, "80?"))
    n.apply(_failed(Role.SELLER, Act.ACCEPT, None))  # the fallback took the offer
    assert n.outcome is Outcome.ERROR and n.deal_price is None
    assert "its model failed on every turn it played (1)" in n.error


def test_a_recovered_model_keeps_its_result_and_humans_keep_the_fallback():
    n = Negotiation(SCENARIO, buyer="b", seller="s", max_model_failures=2)
    n.apply(Turn(Role.BUYER, Act.INIT_PRICE, 80.0, "80?"))
    n.apply(_failed(Role.SELLER, price=95.0))
    n.apply(Turn(Role.BUYER, Act.COUNTER_PRICE, 85.0, "85?"))
    n.apply(Turn(Role.SELLER, Act.ACCEPT, None, "Deal."))  # the model answered again
    assert n.outcome is Outcome.DEAL and n.deal_price == 85.0
    human = Negotiation(SCENARIO, buyer="b", seller="s")  # no limit: a person's game
    human.apply(Turn(Role.BUYER, Act.INIT_PRICE, 80.0, "80?"))
    human.apply(_failed(Role.SELLER, Act.ACCEPT, None))
    assert human.outcome is Outcome.DEAL


def test_max_model_failures_is_validated():
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="negotiation.max_model_failures: must be >= 1"):
        parse_config({"negotiation": {"max_model_failures": 0}}, None)


# --------------------------------------------------------------------------- reports


async def test_the_report_shows_fallback_shares_and_flags_an_agent_past_the_threshold(tmp_path):
    """A model that answers, but never usably: its turns are all fallback moves (results, not
    errors: the model did not fail), so the report flags the agent beside its results."""
    from bot.agent_factory import AgentFactory
    from bot.llm.fake import FakeBackend
    from bot.llm.pool import ModelPool
    from bot.report import build_report, load_report_data, render

    cfg = parse_config({
        "models": {"babbler": {"backend": "openai", "url": "http://10.0.0.9/v1"}},
        "agents": {"rule-buyer": {"kind": "rule", "role": "buyer"},
                   "llm-seller": {"kind": "llm", "role": "seller", "model": "babbler",
                                  "policy": "llm", "seed": 0}}}, None)
    plan = plan_tournament(cfg, buyers=["rule-buyer"], sellers=["llm-seller"],
                           scenario_set="agreemate", scenarios=2)
    factory = AgentFactory(cfg, pool=ModelPool(
        cfg.models, factory=lambda spec: FakeBackend(default="no JSON here")))
    async with await Store.open(tmp_path / "t.db") as store:
        stats = await run_tournament(cfg, plan, store, progress=False, factory=factory)
        assert stats.errors == 0
        data = await load_report_data(store)
    report = build_report(data, fallback_flag=0.5)
    seller = next(a for a in report["agents"] if a["agent"] == "llm-seller")
    buyer = next(a for a in report["agents"] if a["agent"] == "rule-buyer")
    assert seller["fallback"]["share"] == 1.0 and seller["fallback"]["flagged"]
    assert seller["fallback"]["turns"] == seller["fallback"]["fallback_turns"] > 0
    assert buyer["fallback"]["share"] == 0.0 and not buyer["fallback"]["flagged"]
    assert report["flagged"] == [{"agent": "llm-seller", "seat": "seller", "share": 1.0}]
    text = render(report, "table")
    assert "WARNING: results made of fallback play" in text and "100% FLAGGED" in text
    assert "Agent llm-seller as seller (2 negotiations; fallback 100% FLAGGED of its turns)" in text
    relaxed = build_report(data, fallback_flag=1.0)  # a share must pass the threshold
    assert relaxed["flagged"] == [] and "WARNING" not in render(relaxed, "table")


def test_fallback_flag_is_validated():
    from bot.errors import ConfigError
    from bot.tournament import TournamentConfig

    with pytest.raises(ConfigError, match="tournament.fallback_flag: must be a share in"):
        TournamentConfig.from_table({"fallback_flag": 1.5}, "tournament")

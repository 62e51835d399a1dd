"""Scripted people (bench/human_strategies.py) against the default agents on the paper's 30
scenarios, through `haggle play`'s code path with the template narrator: no script farms them,
and a person haggling in good faith still closes."""

import asyncio
import sys
from pathlib import Path

import pytest

from bot.config import load_config
from bot.scenarios import load_scenario_set

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import human_strategies as hs


@pytest.fixture(scope="module")
def table():
    cfg = load_config(None)
    who = hs.people() + hs.sweep_people(cfg)  # with the one-price sweep behind one-price-best
    rows = asyncio.run(hs.bench(cfg, "template", load_scenario_set(cfg, "agreemate"), who, 0))
    summary = [s for s in hs.summarise(rows) if not s["strategy"].startswith("one-price-")]
    return {(s["person"], s["strategy"]): s for s in summary + hs.best_one_price(rows)}, rows


def test_every_strategy_played_every_scenario(table):
    summary, _ = table
    assert len(summary) == 2 * (len(hs.STRATEGIES) + 1) and all(s["games"] == 30 for s in summary.values())


def test_stubborn_published_fraction_is_not_paid(table):
    summary, _ = table
    for role in ("buyer", "seller"):
        assert summary[(role, "stubborn-fraction")]["surplus_share"] <= 0.5


def test_the_fair_person_closes(table):
    summary, _ = table
    for role in ("buyer", "seller"):
        assert summary[(role, "fair")]["deal_rate"] >= 0.8


def test_no_script_keeps_more_than_065_of_the_zone(table):
    # every strategy, and the best single price a person could repeat (the sweep across the
    # bot's private range: one-price-best)
    summary, _ = table
    assert {("buyer", "one-price-best"), ("seller", "one-price-best")} <= set(summary)
    worst = max(summary.values(), key=lambda s: s["surplus_share"])
    assert worst["surplus_share"] <= 0.65, worst


def test_deals_stay_inside_the_bots_private_limit(table):
    _, rows = table
    for r in rows:
        if r["deal"]:
            assert (r["price"] >= r["limit"] - 1e-9) if r["role"] == "buyer" else (r["price"] <= r["limit"] + 1e-9)


def _pairing(buyer, seller):
    cfg = load_config(None)
    return asyncio.run(hs.pairing(cfg, "template", load_scenario_set(cfg, "agreemate"), buyer, seller))


def test_hybrid_pair_still_agrees_fairly():
    r = _pairing("hybrid-buyer", "hybrid-seller")
    assert r["agreement"] >= 0.9 and r["fairness"] >= 0.3


def test_aggressive_still_beats_passive():
    assert _pairing("hybrid-aggressive-buyer", "hybrid-passive-seller")["bias"] > 0.5  # buyer's way
    assert _pairing("hybrid-passive-buyer", "hybrid-aggressive-seller")["bias"] < -0.2  # seller's

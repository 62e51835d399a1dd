"""Reports: summaries, comparisons, the Bradley-Terry leaderboard, formats and charts.

One database is built per module: a rule-agent tournament and two imported AgreeMate files
that differ only in the seller's personality (so the report has a personality comparison).
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field

import pytest

from bot.agreemate import import_agreemate
from bot.cli import main
from bot.config import parse_config
from bot.negotiation.metrics import METRIC_KEYS
from bot.negotiation.turns import Act
from bot.report import (
    ACT_COLOURS,
    bradley_terry,
    build_report,
    leaderboard,
    render,
    wilson_interval,
)
from bot.store import Store
from bot.tournament import plan_tournament, run_tournament
from tests.conftest import shared_file

AGENTS = {"rule": {"kind": "rule", "role": "generalist"},
          "rule-buyer": {"kind": "rule", "role": "buyer", "concession": 0.15},
          "rule-seller": {"kind": "rule", "role": "seller", "concession": 0.4}}
FILES = ("baseline-3B-buyer+baseline-3B-seller-fair.csv",
         "baseline-3B-buyer+baseline-3B-seller-passive.csv")


@pytest.fixture(autouse=True)
def own_config(tmp_path, monkeypatch):
    """The commands read an empty config of the test's own, not the repo's config.toml."""
    config = tmp_path / "empty-config.toml"
    config.write_text("")
    monkeypatch.setenv("HAGGLE_CONFIG", str(config))


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    files = [shared_file("agreemate_results", f) for f in FILES]
    path = tmp_path_factory.mktemp("report") / "h.db"
    cfg = parse_config({"agents": AGENTS}, None)

    async def build():
        async with await Store.open(path) as store:
            plan = plan_tournament(cfg, agents=list(AGENTS), scenario_set="agreemate",
                                   scenarios=5, name="rules")
            await run_tournament(cfg, plan, store, progress=False)
            for f in files:
                await import_agreemate(store, f, cfg)

    asyncio.run(build())
    return path


@pytest.fixture(scope="module")
def report_json(db):
    from bot.report import load_report_data

    async def load():
        async with await Store.open(db, create=False) as store:
            return await load_report_data(store)

    return build_report(asyncio.run(load()))


def test_wilson_interval():
    low, high = wilson_interval(30, 30)
    assert high == 1.0 and math.isclose(low, 0.8865, abs_tol=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.27 < high < 0.28
    low, high = wilson_interval(5, 10)
    assert math.isclose(low + high, 1.0) and 0.23 < low < 0.24


def test_bradley_terry_recovers_the_share_split():
    games = [("a", "b", 0.8)] * 200 + [("b", "c", 0.8)] * 200
    fitted = bradley_terry(games)
    logit = math.log(0.8 / 0.2)
    assert math.isclose(fitted["a"][0] - fitted["b"][0], logit, rel_tol=0.02)
    assert math.isclose(fitted["b"][0] - fitted["c"][0], logit, rel_tol=0.02)
    assert abs(sum(theta for theta, _ in fitted.values())) < 1e-9  # centred
    assert all(0 < se < 0.3 for _, se in fitted.values())
    # a clean sweep stays finite thanks to the prior
    sweep = bradley_terry([("x", "y", 1.0)] * 50)
    assert math.isfinite(sweep["x"][0]) and sweep["x"][0] > sweep["y"][0]


@dataclass
class _Neg:
    buyer: str
    seller: str
    deal_price: float | None
    metrics: dict = field(default_factory=dict)


def _neg(buyer, seller, share):
    if share is None:
        return _Neg(buyer, seller, None, {"agreed": False})
    return _Neg(buyer, seller, 100.0, {"agreed": True, "buyer_surplus_share": share,
                                       "seller_surplus_share": 1 - share})


def test_leaderboard_ranks_by_surplus_and_keeps_disconnected_groups_apart():
    negs = ([_neg("greedy", "soft", 0.9)] * 10 + [_neg("meek", "soft", 0.4)] * 10
            + [_neg("meek", "tough", 0.1)] * 10 + [_neg("greedy", "tough", None)] * 4
            + [_neg("p", "q", 0.5)] * 5 + [_neg("x", "y", None)] * 3)
    board = {r["agent"]: r for r in leaderboard(negs)}
    assert [r["agent"] for r in leaderboard(negs)][:2] == ["greedy", "tough"]
    assert board["greedy"]["rating"] > board["meek"]["rating"]
    assert board["tough"]["rating"] > board["soft"]["rating"]
    assert board["greedy"]["agreement"]["mean"] == pytest.approx(10 / 14)
    assert board["greedy"]["surplus_share"]["mean"] == pytest.approx(0.9)
    assert board["p"]["group"] != board["greedy"]["group"]
    assert board["p"]["rating"] == pytest.approx(1500) == board["q"]["rating"]
    assert board["x"]["rating"] is None and board["x"]["rated_deals"] == 0
    assert board["x"]["rank"] > board["p"]["rank"]


def test_report_has_every_metric_per_pairing_and_per_agent(report_json):
    r = report_json
    assert [t["name"] for t in r["tournaments"]] == [
        "rules", "agreemate/baseline-3B-buyer+baseline-3B-seller-fair",
        "agreemate/baseline-3B-buyer+baseline-3B-seller-passive"]
    assert {p["label"] for p in r["pairings"]} == {
        "rule vs rule-seller", "rule-buyer vs rule", "rule-buyer vs rule-seller",
        "baseline-3B-buyer vs baseline-3B-seller-fair",
        "baseline-3B-buyer vs baseline-3B-seller-passive"}
    for p in r["pairings"]:
        assert set(METRIC_KEYS) <= set(p["metrics"])
        for s in p["metrics"].values():
            assert set(s) == {"mean", "median", "n", "ci_low", "ci_high", "std"}
    by_agent = {(a["agent"], a["seat"]): a for a in r["agents"]}
    assert by_agent[("rule", "buyer")]["n"] == 5 and by_agent[("rule", "seller")]["n"] == 5
    assert by_agent[("baseline-3B-buyer", "buyer")]["n"] == 60
    assert by_agent[("rule-buyer", "buyer")]["metrics"]["surplus_share"]["n"] > 0
    agreed = by_agent[("baseline-3B-buyer", "buyer")]["metrics"]["agreed"]
    assert 0 <= agreed["ci_low"] <= agreed["mean"] <= agreed["ci_high"] <= 1  # Wilson


def test_personality_comparison_appears_when_agents_differ_only_there(report_json):
    (comparison,) = report_json["comparisons"]
    assert (comparison["dimension"], comparison["seat"]) == ("personality", "seller")
    assert comparison["fixed"] == {"source": "agreemate", "family": "baseline", "cot": False,
                                   "scale": "3B"}
    assert [row["value"] for row in comparison["rows"]] == ["fair", "passive"]
    assert all(row["n"] == 30 for row in comparison["rows"])


def test_formats(report_json):
    text = render(report_json, "table")
    for heading in ("Tournaments", "Leaderboard", "Pairings",
                    "personality comparison, seller seat", "Agent rule as buyer",
                    "Pairing rule vs rule-seller [rules]"):
        assert heading in text
    markdown = render(report_json, "markdown")
    assert markdown.startswith("# haggle report") and "| # | agent |" in markdown
    assert json.loads(render(report_json, "json"))["metric_keys"][:len(METRIC_KEYS)] == list(
        METRIC_KEYS)


def test_act_colours_cover_every_act():
    assert set(ACT_COLOURS) == {a.value for a in Act}


def test_report_command_writes_charts(db, tmp_path, capsys):
    charts = tmp_path / "charts"
    assert main(["report", "--db", str(db), "--tournament", "agreemate/*", "--format",
                 "markdown", "--plot", str(charts)]) == 0
    out = capsys.readouterr().out
    assert "baseline-3B-buyer vs baseline-3B-seller-fair" in out and "rule-buyer" not in out
    names = sorted(p.name for p in charts.iterdir())
    assert names == ["acts_by_agent.png", "agreement_by_pairing.png", "fairness_bias.png",
                     "leaderboard.png", "price_trajectories.png"]
    for png in charts.iterdir():
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_report_errors(db, tmp_path, capsys):
    assert main(["report", "--db", str(db), "--tournament", "nothing*"]) == 2
    assert "no tournament matches 'nothing*'; the database holds: rules" in capsys.readouterr().err
    assert main(["report", "--db", str(tmp_path / "none.db")]) == 2
    assert "no database at" in capsys.readouterr().err
    assert main(["export", "--db", str(tmp_path / "none.db")]) == 2
    assert not (tmp_path / "none.db").exists()

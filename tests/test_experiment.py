"""`haggle experiment`: grid validation, expansion into agents and pairings, a resumable run on
the scripted fake backend, and the paper's tables in `haggle report` (CoT, personality, scale,
role models), beside imported AgreeMate runs on the same scenarios.

The scripted model reads its system prompt (role, listing price, target, personality, CoT) and
concedes by personality, so the tables have something to compare; no real model runs here.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from statistics import fmean

import pytest

from bot.cli import main
from bot.config import parse_config
from bot.errors import ConfigError, StoreError
from bot.experiment import plan_experiment, progress_of, run_experiment
from bot.grid import expand_grid, parse_grid
from bot.llm.fake import FakeBackend
from bot.store import Store
from tests.conftest import shared_file

STEP = {"aggressive": 0.1, "fair": 0.25, "passive": 0.5}  # share of the gap conceded per turn
PATIENCE = {"aggressive": 4, "fair": 3, "passive": 2}     # own turns before accepting


def scripted_model(messages):
    """A negotiator that follows its system prompt: opens at its target, concedes a personality-
    sized step of the gap to the listing price each turn, and accepts after a while."""
    from bot.negotiation.prompts import PERSONALITY_PROMPTS

    system = messages[0]["content"]
    role = "buyer" if system.startswith("You are the buyer") else "seller"
    listing = float(re.search(r"Listing price: \$([\d,.]+?)\.?\n", system).group(1).replace(",", ""))
    target = float(re.search(r"as close to \$([\d,.]+)", system).group(1).replace(",", ""))
    personality = next(p for p, text in PERSONALITY_PROMPTS.items() if text in system)
    mine = sum(1 for m in messages if m["role"] == "assistant")
    extra = {"thought": "stay near my target"} if '"thought"' in system else {}
    if mine >= PATIENCE[personality]:
        return json.dumps({**extra, "act": "accept", "price": None, "utterance": "Deal."})
    anchor = listing if role == "buyer" else 0.6 * listing
    price = round(target + (anchor - target) * min(1.0, STEP[personality] * mine), 2)
    act = "init-price" if mine == 0 else "counter-price"
    words = OPENERS[role][mine]  # never the same words twice, as the agent demands
    return json.dumps({**extra, "act": act, "price": price, "utterance": f"{words} ${price:g}."})


OPENERS = {"buyer": ("Would you take", "Could you do", "I can offer", "Maybe", "Let's say"),
           "seller": ("I'm asking", "I can do", "Meet me at", "The best I can do is", "Fine,")}


GRID = {
    "experiment": {"name": "t", "scenarios": 2, "max_turns": 10},
    "models": {"fake": {"backend": "openai", "url": "http://127.0.0.1:9/v1"}},
    "grid": {"models": ["fake"], "cot": [False, True],
             "personality": ["aggressive", "fair", "passive"]},
    "agent": {"temperature": 0.0, "seed": 0},
}


def grid_with(**sections):
    raw = json.loads(json.dumps(GRID))
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


@pytest.fixture
def base(tmp_path):
    return parse_config({}, tmp_path / "config.toml")


def fake_factory(cfg):
    from bot.agent_factory import AgentFactory
    from bot.llm.pool import ModelPool

    return AgentFactory(cfg, pool=ModelPool(cfg.models,
                                            factory=lambda spec: FakeBackend(default=scripted_model)))


async def run(base, raw, db):
    plan = plan_experiment(base, parse_grid(raw))
    async with await Store.open(db) as store:
        return plan, await run_experiment(plan, store, progress=False,
                                          factory=fake_factory(plan.cfg))


# --------------------------------------------------------------------------- the grid file


def _set(path, value):
    """A change to GRID: the value at a dotted path (None deletes it)."""
    def change(raw):
        *parents, last = path.split(".")
        table = raw
        for key in parents:
            table = table.setdefault(key, {})
        if value is None:
            del table[last]
        else:
            table[last] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_set("colour", {}), r"unknown section\(s\) \[colour\]"),
    (_set("experiment.name", None), "experiment.name: missing"),
    (_set("experiment.pairings", "all"), "experiment.pairings: must be one of 'paper'"),
    (_set("experiment.scenarios", 0), "experiment.scenarios: must be >= 1"),
    (_set("experiment.scenario_set", "nope"), "experiment.scenario_set: must be one of"),
    (_set("experiment.name", "a b"), "experiment.name: 'a b' must be letters"),
    (_set("experiment.turns", 3), "experiment.turns: unknown key"),
    (_set("experiment.baseline.model", "other"), "experiment.baseline.model: 'other' is not"),
    (_set("experiment.baseline.personality", "sly"),
     "experiment.baseline.personality: must be one of"),
    (_set("grid.cot", [True]), "experiment.baseline.cot: false is not among grid.cot"),
    (_set("grid.models", ["ghost"]), "grid.models: no model named 'ghost'"),
    (_set("grid.models", []), "grid.models: name at least one base model"),
    (_set("grid.personality", ["fair", "fair"]), "grid.personality: a value is listed twice"),
    (_set("grid.personality", ["rude"]), r"grid.personality\[0\]: must be one of"),
    (_set("grid.buyer_models", ["fake"]), "grid.buyer_models: model 'fake' is already listed"),
    (_set("models.spare", {"path": "embedded"}), "models.spare: declared but on no axis"),
    (_set("models.fake.url", "x"), "models.fake.url"),
    (_set("agent.cot", True), "agent.cot: set by the grid for every agent"),
    (_set("agent.temperature", -1), "agent.temperature: must be >= 0"),
    (_set("agent.colour", 1), "agent.colour: unknown key"),
])
def test_bad_grids_name_the_key(change, message):
    raw = json.loads(json.dumps(GRID))
    change(raw)
    with pytest.raises(ConfigError, match=message):
        parse_grid(raw)


def test_the_paper_pairings():
    raw = grid_with(models={"ft-b": {"path": "embedded"}, "ft-s": {"path": "embedded"},
                            "gen": {"path": "embedded"}, "big": {"path": "embedded"}},
                    grid={"models": ["fake", "big"], "buyer_models": ["ft-b"],
                          "seller_models": ["ft-s"], "generalist_models": ["gen"]})
    pairings = expand_grid(parse_grid(raw))
    blocks = {p.key: p.blocks for p in pairings}
    assert len(blocks) == len(pairings)  # each pairing once
    scale_cot = {k for k, b in blocks.items() if "scale-cot" in b}
    names = [f"{m}{c}-fair" for m in ("fake", "big") for c in ("", "-cot")]
    assert scale_cot == {(f"{b}-buyer", f"{s}-seller") for b in names for s in names}  # 4 x 4
    personality = {k for k, b in blocks.items() if "personality" in b}
    ps = ("aggressive", "fair", "passive")
    assert personality == {(f"fake-{b}-buyer", f"fake-{s}-seller") for b in ps for s in ps}
    roles = {k for k, b in blocks.items() if "roles" in b}
    assert roles == {("ft-b-fair-buyer", "ft-s-fair-seller"), ("gen-fair-buyer", "gen-fair-seller"),
                     ("ft-b-fair-buyer", "fake-fair-seller"), ("gen-fair-buyer", "fake-fair-seller"),
                     ("fake-fair-buyer", "ft-s-fair-seller"), ("fake-fair-buyer", "gen-fair-seller"),
                     ("fake-fair-buyer", "fake-fair-seller")}
    assert blocks[("fake-fair-buyer", "fake-fair-seller")] == ("scale-cot", "personality", "roles")
    assert len(pairings) == 16 + 9 - 1 + 7 - 1
    families = {v.name: v.family for p in pairings for v in (p.buyer, p.seller)}
    assert families["ft-b-fair-buyer"] == "finetune" and families["gen-fair-seller"] == "generalist"
    assert families["big-cot-fair-seller"] == "baseline"


def test_baseline_and_cross_pairings():
    baseline = expand_grid(parse_grid(grid_with(experiment={"pairings": "baseline"})))
    # 6 buyer variants vs the baseline seller, the baseline buyer vs 6 seller variants, one shared
    assert len(baseline) == 6 + 6 - 1
    assert all("fake-fair-seller" == p.seller.name or "fake-fair-buyer" == p.buyer.name
               for p in baseline)
    cross = expand_grid(parse_grid(grid_with(experiment={"pairings": "cross"})))
    assert len(cross) == 6 * 6 and {p.blocks for p in cross} == {("cross",)}


@pytest.mark.parametrize("name, agents, pairings", [("grid_cpu.toml", 8, 12),
                                                     ("grid_gpu_llama32.toml", 12, 24)])
def test_the_example_grids_plan(base, name, agents, pairings):
    from pathlib import Path

    from bot.grid import load_grid

    plan = plan_experiment(base, load_grid(Path(__file__).parents[1] / "examples" / name))
    assert (len(plan.agents), len(plan.tournaments)) == (agents, pairings)
    assert all(t.plan.scenario_set == "agreemate" for t in plan.tournaments)


def test_dry_run_prints_the_plan(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text('[experiment]\nname = "demo"\nscenarios = 3\n\n[models.m]\npath = "embedded"\n\n'
                    '[grid]\nmodels = ["m"]\ncot = [false, true]\npersonality = ["fair", "passive"]\n')
    assert main(["experiment", str(grid), "--db", str(tmp_path / "x.db"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "experiment 'demo': 6 agents, 7 pairings (mode paper)" in out
    assert "demo/m-cot-fair-buyer+m-fair-seller  [scale-cot]  0/3 stored" in out
    assert "21 negotiations planned, 0 stored, 21 to run" in out
    assert not (tmp_path / "x.db").exists()  # a dry run writes nothing


# --------------------------------------------------------------------------- running


async def test_run_is_resumable_and_a_grown_grid_runs_only_what_is_new(base, tmp_path):
    db = tmp_path / "e.db"
    small = grid_with(grid={"personality": ["fair", "passive"]})
    plan, stats = await run(base, small, db)
    assert plan.planned == stats.ran == 7 * 2 and stats.errors == 0 and stats.deals > 0
    _, again = await run(base, small, db)
    assert again.ran == 0 and again.already_done == 14
    grown, stats = await run(base, GRID, db)
    assert stats.already_done == 14 and stats.ran == grown.planned - 14 == (12 - 7) * 2
    async with await Store.open(db, create=False) as store:
        assert (await progress_of(store, grown)).stored(grown) == grown.planned
        row = await store.tournament("t/fake-cot-fair-buyer+fake-passive-seller")
        assert row is None  # not a paper pairing: CoT and personality do not cross
        row = await store.tournament("t/fake-passive-buyer+fake-aggressive-seller")
        meta = row.agents["fake-passive-buyer"]
        assert (meta["family"], meta["experiment"], meta["personality"], meta["cot"],
                meta["neutral_personality"]) == ("baseline", "t", "passive", False, "fair")
        assert row.config["experiment"]["blocks"] == ["personality"]


async def test_one_agent_name_means_one_agent_in_a_database(base, tmp_path):
    db = tmp_path / "e.db"
    await run(base, GRID, db)
    other = grid_with(experiment={"name": "u"}, agent={"temperature": 0.5})
    with pytest.raises(StoreError, match="agent 'fake-.*' already plays in 't/.*temperature"):
        await run(base, other, db)


# --------------------------------------------------------------------------- the paper's tables


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """One experiment and two imported AgreeMate files (3B personalities) in one database."""
    tmp = tmp_path_factory.mktemp("exp")
    results = tmp / "agreemate_results"
    results.mkdir()
    for name in ("baseline-3B-buyer-aggressive+baseline-3B-seller-passive.csv",
                 "baseline-3B-buyer+baseline-COT-3B-seller.csv",
                 "baseline-3B-buyer+baseline-3B-seller.csv"):
        shutil.copy(shared_file("agreemate_results", name), results / name)
    config = tmp / "config.toml"
    config.write_text(f'[data]\nagreemate_results = "{results}"\n')
    base = parse_config({"data": {"agreemate_results": str(results)}}, config)
    db = tmp / "e.db"
    asyncio.run(run(base, GRID, db))

    async def import_and_load():
        from bot.agreemate import import_reference_runs
        from bot.report import load_report_data

        async with await Store.open(db) as store:
            assert await import_reference_runs(store, base) == (3, 0)
            assert await import_reference_runs(store, base) == (0, 3)  # imported once
            return await load_report_data(store)

    return config, db, asyncio.run(import_and_load())


def _pairing_means(negs, key):
    groups = {}
    for n in negs:
        groups.setdefault((n.tournament, n.buyer, n.seller), []).append(n)
    means = [fmean(vs) for g in groups.values()
             if (vs := [n.metrics[key] for n in g if n.metrics.get(key) is not None])]
    return fmean(means)


def test_cot_table_is_the_mean_of_pairing_means(reported):
    from bot.report import build_report

    _, _, data = reported
    paper = build_report(data)["paper"]
    assert paper["sources"] == ["t", "AgreeMate"]
    ours = [n for n in data.negotiations if n.tournament.startswith("t/")
            and "-fair-buyer" in n.buyer and "-fair-seller" in n.seller]
    by_cot = {c["cot"]: c for c in paper["cot"] if c["source"] == "t"}
    with_cot = [n for n in ours if "-cot-" in n.buyer or "-cot-" in n.seller]
    without = [n for n in ours if n not in with_cot]
    assert by_cot[True]["pairings"] == 3 and by_cot[False]["pairings"] == 1
    for key in ("agreed", "dialogue_length", "fairness", "bias", "concession_rate"):
        assert by_cot[True]["metrics"][key]["mean"] == pytest.approx(_pairing_means(with_cot, key))
        assert by_cot[False]["metrics"][key]["mean"] == pytest.approx(_pairing_means(without, key))
    # the published runs: only on the scenarios the experiment played (like for like)
    played = {n.scenario_id for n in ours}
    theirs = {c["cot"]: c for c in paper["cot"] if c["source"] == "AgreeMate"}
    assert theirs[True]["negotiations"] == theirs[False]["negotiations"] == len(played) == 2
    assert "counted on the 2 scenario(s) the experiments played" in paper["note"]


def test_personality_table_crosses_buyer_and_seller(reported):
    from bot.report import build_report

    _, _, data = reported
    paper = build_report(data)["paper"]
    ours = next(g for g in paper["personality"] if g["source"] == "t" and not g["cot"])
    assert ours["buyers"] == ours["sellers"] == ["aggressive", "fair", "passive"]
    cell = next(c for c in ours["cells"] if (c["buyer"], c["seller"]) == ("passive", "aggressive"))
    negs = [n for n in data.negotiations
            if n.tournament == "t/fake-passive-buyer+fake-aggressive-seller"]
    assert cell["n"] == len(negs) == 2
    assert cell["metrics"]["agreed"]["mean"] == fmean(n.metrics["agreed"] for n in negs)
    # the scripted model's personalities show: a passive seller's second offer meets the passive
    # buyer's (the guard closes the deal at turn 4); aggressive pairs haggle until turn 9
    length = {(c["buyer"], c["seller"]): c["metrics"]["dialogue_length"]["mean"]
              for c in ours["cells"]}
    assert length[("passive", "passive")] == 4 and length[("aggressive", "aggressive")] == 9
    theirs = next(g for g in paper["personality"] if g["source"] == "AgreeMate")
    assert {(c["buyer"], c["seller"]) for c in theirs["cells"]} == {
        ("aggressive", "passive"), ("default", "default")}


def test_report_renders_the_paper_tables_beside_agreemate(reported, capsys):
    config, db, _ = reported
    assert main(["report", "--db", str(db), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    cot = out.split("Paper: combinations with vs without chain of thought")[1].split("\n\n")[0]
    header = cot.splitlines()[2]
    assert header.split("  ")[0] == "metric" and "t with CoT" in header
    assert "AgreeMate with CoT" in header and "AgreeMate without CoT" in header
    for label in ("aggressiveness", "bias", "dialogue length", "fairness", "concession rate",
                  "probing ratio", "relative efficiency"):
        assert re.search(rf"^{label} ", cot, re.MULTILINE), label
    agreement = out.split("Paper: personality pairings, agreement rate")[1].split("\n\n")[0]
    assert re.search(r"^t\s+passive\s+\d+% \(n=2\)", agreement, re.MULTILINE)
    assert re.search(r"^AgreeMate 3B\s+aggressive\s+.*\d+% \(n=2\)", agreement, re.MULTILINE)
    assert "Paper: personality pairings, fairness (deals)" in out
    assert "Paper: model scale and CoT" in out


def test_the_paper_cot_table_from_its_published_runs(tmp_path):
    """The paper's CoT table was computed on the `_updated` files: imported alone, they give
    its aggressiveness, bias, dialogue length and fairness (it prints 4 decimals)."""
    from bot.agreemate import import_agreemate
    from bot.report import build_report, load_report_data

    folder = shared_file("agreemate_results")
    files = [f for f in sorted(folder.glob("baseline-*_updated.csv"))]
    assert len(files) == 35  # 26 pairings with CoT, 9 without
    base = parse_config({}, None)

    async def load():
        async with await Store.open(tmp_path / "p.db") as store:
            for f in files:
                await import_agreemate(store, f, base)
            return await load_report_data(store)

    cot = {c["cot"]: c["metrics"] for c in build_report(asyncio.run(load()))["paper"]["cot"]}
    published = {True: {"aggressiveness": 0.2107, "bias": 1.0813, "dialogue_length": 10.6115,
                        "fairness": -0.4385},
                 False: {"aggressiveness": 0.1333, "bias": 0.1671, "dialogue_length": 11.5667,
                         "fairness": 0.3021}}
    for with_cot, values in published.items():
        for key, value in values.items():
            assert cot[with_cot][key]["mean"] == pytest.approx(value, abs=1.5e-4), (with_cot, key)


def test_report_plots_the_paper_charts(reported, tmp_path, capsys):
    config, db, _ = reported
    out = tmp_path / "charts"
    assert main(["report", "--db", str(db), "--config", str(config), "--plot", str(out)]) == 0
    capsys.readouterr()
    for name in ("paper_cot.png", "paper_personality.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name


async def test_role_models_table(base, tmp_path):
    from bot.report import build_report, load_report_data

    endpoint = {"backend": "openai", "url": "http://127.0.0.1:9/v1"}
    raw = grid_with(models={"ft-b": endpoint, "ft-s": endpoint, "gen": endpoint},
                    grid={"personality": ["fair"], "cot": [False], "buyer_models": ["ft-b"],
                          "seller_models": ["ft-s"], "generalist_models": ["gen"]})
    _, stats = await run(base, raw, tmp_path / "r.db")
    assert stats.ran == 7 * 2 and stats.errors == 0
    async with await Store.open(tmp_path / "r.db", create=False) as store:
        data = await load_report_data(store)
    roles = build_report(data)["paper"]["roles"]
    assert [(r["buyer_family"], r["seller_family"]) for r in roles] == [
        ("baseline", "baseline"), ("baseline", "finetune"), ("baseline", "generalist"),
        ("finetune", "baseline"), ("finetune", "finetune"), ("generalist", "baseline"),
        ("generalist", "generalist")]
    ft = next(r for r in roles if r["buyer_family"] == r["seller_family"] == "finetune")
    negs = [n for n in data.negotiations if n.tournament == "t/ft-b-fair-buyer+ft-s-fair-seller"]
    assert ft["n"] == len(negs) == 2
    assert ft["metrics"]["dialogue_length"]["mean"] == fmean(
        n.metrics["dialogue_length"] for n in negs)

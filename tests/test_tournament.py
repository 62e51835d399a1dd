"""Tournaments: planning (pairings, scenarios, names), running with rule agents, resuming.

Runs use the shipped ``agreemate`` scenario set and the rule agents, so they need no data
files and take well under a second. The crash tests are in test_tournament_resume.py.
"""

from __future__ import annotations

import sqlite3

import pytest

from bot.config import parse_config
from bot.errors import ConfigError, DataError, StoreError
from bot.negotiation.agents import RuleAgent
from bot.negotiation.turns import Role, Turn
from bot.store import Store
from bot.tournament import (
    Pairing,
    TournamentConfig,
    default_name,
    make_pairings,
    plan_tournament,
    run_tournament,
    select_scenarios,
    split_names,
    tournament_config,
)

RULE_AGENTS = {
    "rule": {"kind": "rule", "role": "generalist", "seed": 0},
    "rule-buyer": {"kind": "rule", "role": "buyer", "seed": 0, "concession": 0.2},
    "rule-seller": {"kind": "rule", "role": "seller", "seed": 0, "concession": 0.3},
    "hard-seller": {"kind": "rule", "role": "seller", "seed": 5, "concession": 0.1},
}


@pytest.fixture
def cfg(tmp_path):
    return parse_config({"agents": RULE_AGENTS, "store": {"path": "h.db"}},
                        tmp_path / "config.toml")


def test_split_names():
    assert split_names(" a, b,,c ") == ("a", "b", "c")
    assert split_names(None) == () and split_names(["x"]) == ("x",)


def test_agents_pair_every_ordered_pair_that_fits_the_seats(cfg):
    pairs = make_pairings(cfg, agents=["rule-seller", "rule", "rule-buyer"])
    assert pairs == [Pairing("rule", "rule-seller"), Pairing("rule-buyer", "rule"),
                     Pairing("rule-buyer", "rule-seller")]


def test_buyers_times_sellers(cfg):
    pairs = make_pairings(cfg, buyers=["rule-buyer", "rule"],
                          sellers=["hard-seller", "rule-seller"])
    assert [str(p) for p in pairs] == ["rule vs hard-seller", "rule vs rule-seller",
                                       "rule-buyer vs hard-seller", "rule-buyer vs rule-seller"]


@pytest.mark.parametrize("kwargs, message", [
    ({"agents": ["rule", "nobody"]}, "unknown agent 'nobody'; configured agents: hard-seller"),
    ({"buyers": ["rule-seller"], "sellers": ["rule"]}, "cannot buy"),
    ({"buyers": ["rule"], "sellers": ["rule-buyer"]}, "cannot sell"),
    ({"buyers": ["rule"]}, "go together"),
    ({"agents": ["rule"], "buyers": ["rule"], "sellers": ["rule"]}, "not both"),
    ({}, "no pairings"),
    ({"agents": ["rule-buyer", "hard-seller", "rule-buyer"]}, "twice"),
    ({"agents": ["rule-seller", "hard-seller"]}, "can face another"),
])
def test_bad_pairings_are_clear_errors(cfg, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_pairings(cfg, **kwargs)


def test_scenario_selection(cfg):
    every = select_scenarios(cfg, "agreemate", 30, seed=0)
    assert len(every) == 30 and every == select_scenarios(cfg, "agreemate", 30, seed=9)
    some = select_scenarios(cfg, "agreemate", 5, seed=1)
    assert some == select_scenarios(cfg, "agreemate", 5, seed=1)
    assert some != select_scenarios(cfg, "agreemate", 5, seed=2)
    assert {s.id for s in some} <= {s.id for s in every}
    with pytest.raises(DataError, match="zero scenarios"):
        select_scenarios(cfg, "agreemate", 0, seed=0)
    with pytest.raises(DataError, match="has 30"):
        select_scenarios(cfg, "agreemate", 31, seed=0)


def test_default_name_is_a_function_of_the_arguments(cfg):
    a = plan_tournament(cfg, agents=["rule-buyer", "rule"], scenario_set="agreemate", scenarios=3)
    b = plan_tournament(cfg, agents=["rule", "rule-buyer"], scenario_set="agreemate", scenarios=3)
    assert a.name == b.name == "rule,rule-buyer.agreemate-3.seed0.rep1"
    assert default_name(agents=[], buyers=["b"], sellers=["s2", "s1"], scenario_set="x",
                        scenarios=2, seed=4, repetitions=3) == "b+s1,s2.x-2.seed4.rep3"
    assert plan_tournament(cfg, agents=["rule", "rule-buyer"], scenario_set="agreemate",
                           scenarios=3, name="mine").name == "mine"


def test_plan_lays_out_every_negotiation(cfg):
    plan = plan_tournament(cfg, buyers=["rule"], sellers=["rule-seller", "hard-seller"],
                           scenario_set="agreemate", scenarios=4, repetitions=3, max_turns=9)
    matches = plan.matches()
    assert plan.planned == len(matches) == 2 * 4 * 3
    assert len({m.key for m in matches}) == len(matches)
    assert plan.max_turns == 9
    with pytest.raises(ConfigError, match="repetitions"):
        plan_tournament(cfg, agents=["rule", "rule-buyer"], scenario_set="agreemate", repetitions=0)


def test_tournament_config_section(cfg):
    where = "tournament"
    t = TournamentConfig.from_table({"agents": ["rule", "rule-buyer"], "workers": 2,
                                     "scenario_set": "agreemate"}, where, None)
    assert t.agents == ("rule", "rule-buyer") and t.workers == 2 and t.scenarios == 30
    for table, message in [({"workers": 0}, "tournament.workers: must be >= 1"),
                           ({"scenario_set": "nope"}, "tournament.scenario_set"),
                           ({"buyers": ["rule"]}, "go together"),
                           ({"agents": ["a"], "buyers": ["b"], "sellers": ["c"]}, "not both"),
                           ({"colour": 1}, "tournament.colour: unknown key")]:
        with pytest.raises(ConfigError, match=message):
            TournamentConfig.from_table(table, where, None)
    assert tournament_config(cfg) == TournamentConfig()  # section not loaded: the defaults


async def test_a_run_stores_every_planned_negotiation_and_a_rerun_adds_nothing(cfg, tmp_path):
    plan = plan_tournament(cfg, agents=["rule", "rule-buyer", "rule-seller"],
                           scenario_set="agreemate", scenarios=5, repetitions=2)
    path = tmp_path / "h.db"
    async with await Store.open(path) as store:
        stats = await run_tournament(cfg, plan, store, workers=2, progress=False)
        assert (stats.ran, stats.already_done, stats.finished) == (plan.planned, 0, True)
        assert stats.deals + (stats.ran - stats.deals) == 30 and stats.errors == 0
        assert stats.agent_seconds > 0 and stats.store_seconds > 0
        assert abs(sum(stats.shares().values()) - 1.0) < 1e-9
        again = await run_tournament(cfg, plan, store, workers=2, progress=False)
        assert (again.ran, again.already_done, again.finished) == (0, plan.planned, True)
        (row,) = await store.tournaments()
        assert row.finished_at is not None and row.planned == row.stored == 30
        assert row.config["settings"]["scenario_ids"] == [s.id for s in plan.scenarios]
        assert row.agents["rule-buyer"]["kind"] == "rule" and row.seed == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(DISTINCT buyer || seller || scenario_id || repetition)"
                            " FROM negotiations").fetchone()[0] == 30
        # every negotiation has all its turns
        assert conn.execute(
            "SELECT count(*) FROM negotiations n WHERE json_extract(n.metrics, '$.dialogue_length')"
            " != (SELECT count(*) FROM turns t WHERE t.negotiation_id = n.id)").fetchone()[0] == 0


async def test_results_do_not_depend_on_the_number_of_workers(cfg, tmp_path):
    plan = plan_tournament(cfg, agents=["rule", "rule-buyer", "hard-seller"],
                           scenario_set="agreemate", scenarios=6, repetitions=2)
    results = []
    for workers in (1, 3):
        async with await Store.open(tmp_path / f"w{workers}.db") as store:
            await run_tournament(cfg, plan, store, workers=workers, progress=False)
            rows = await store.negotiations()
        results.append({(r.buyer, r.seller, r.scenario_id, r.repetition):
                        (r.outcome, r.deal_price, r.metrics["dialogue_length"]) for r in rows})
    assert results[0] == results[1] and len(results[0]) == plan.planned
    # repetitions play with different seeds, so they are not all copies of each other
    reps = {}
    for (b, s, sc, _rep), value in results[0].items():
        reps.setdefault((b, s, sc), set()).add(value)
    assert any(len(v) > 1 for v in reps.values())


async def test_resuming_with_a_different_setup_is_refused(cfg, tmp_path):
    async with await Store.open(tmp_path / "h.db") as store:
        plan = plan_tournament(cfg, agents=["rule", "rule-buyer"], scenario_set="agreemate",
                               scenarios=2, name="t")
        await run_tournament(cfg, plan, store, progress=False)
        other = plan_tournament(cfg, agents=["rule", "rule-buyer"], scenario_set="agreemate",
                                scenarios=2, name="t", max_turns=8)
        with pytest.raises(StoreError,
                           match=r"different set-up \(negotiation.max_turns: 15 -> 8\)"):
            await run_tournament(cfg, other, store, progress=False)
        changed = parse_config({"agents": {**RULE_AGENTS, "rule": {**RULE_AGENTS["rule"],
                                                                   "concession": 0.5}}}, None)
        with pytest.raises(StoreError, match="agents.rule.concession: 0.25 -> 0.5"):
            await run_tournament(changed, plan, store, progress=False)


class _Broken:
    """An agent that fails on its second turn (a model crash, say)."""

    def __init__(self, name):
        self.name = name

    async def respond(self, state):
        if state.turn_index >= 2:
            raise RuntimeError("backend crashed")
        return Turn(state.role, "intro", None, "hello")


class _Factory:
    def __init__(self, broken: bool):
        self.broken, self.built = broken, []

    def build(self, name, role, *, seed=None, seat=None):
        self.built.append((name, Role.parse(role).value, seed, seat))
        if self.broken and name == "hard-seller":
            return _Broken(name)
        return RuleAgent(name, seed=seed)

    async def aclose(self):
        pass


async def test_agent_errors_are_stored_and_can_be_retried(cfg, tmp_path):
    plan = plan_tournament(cfg, buyers=["rule"], sellers=["hard-seller", "rule-seller"],
                           scenario_set="agreemate", scenarios=3, repetitions=2)
    async with await Store.open(tmp_path / "h.db") as store:
        factory = _Factory(broken=True)
        stats = await run_tournament(cfg, plan, store, workers=2, progress=False, factory=factory)
        assert stats.errors == 6 and stats.ran == 12 and stats.finished
        assert "backend crashed" in stats.error_examples[0]
        # one agent per (name, seat, worker), rebuilt with seed + repetition on the same seat
        worker0 = {b for b in factory.built if b[3].startswith("w0/")}
        assert worker0 <= {
            (n, r, s + rep, f"w0/{n}/{r}") for n, r, s in
            [("rule", "buyer", 0), ("hard-seller", "seller", 5), ("rule-seller", "seller", 0)]
            for rep in (0, 1)}
        again = await run_tournament(cfg, plan, store, progress=False, factory=_Factory(False))
        assert again.ran == 0  # errors are results too, unless asked to retry
        retried = await run_tournament(cfg, plan, store, progress=False, retry_errors=True,
                                       factory=_Factory(False))
        assert (retried.ran, retried.errors, retried.already_done) == (6, 0, 6)
        rows = await store.negotiations()
    assert len(rows) == 12 and not any(r.outcome == "error" for r in rows)


async def test_a_failure_outside_the_negotiations_stops_the_run_and_resumes(cfg, tmp_path):
    plan = plan_tournament(cfg, agents=["rule", "rule-buyer", "rule-seller"],
                           scenario_set="agreemate", scenarios=10)
    seen = []

    def crash_after_seven(record):
        seen.append(record)
        if len(seen) == 7:
            raise OSError("simulated crash")

    async with await Store.open(tmp_path / "h.db") as store:
        with pytest.raises(OSError, match="simulated crash"):
            await run_tournament(cfg, plan, store, workers=2, progress=False,
                                 on_stored=crash_after_seven)
        stored = await store.done_keys((await store.tournament(plan.name)).id)
        assert 7 <= len(stored) < plan.planned
        assert (await store.tournament(plan.name)).finished_at is None
        stats = await run_tournament(cfg, plan, store, progress=False)
        assert (stats.already_done, stats.ran) == (len(stored), plan.planned - len(stored))
        assert len(await store.negotiations()) == plan.planned


def test_command_line(tmp_path, capsys):
    from bot.cli import main

    config = tmp_path / "config.toml"
    config.write_text('[agents.rule-buyer]\nkind = "rule"\nrole = "buyer"\n'
                      '[agents.rule-seller]\nkind = "rule"\nrole = "seller"\n'
                      '[store]\npath = "results/h.db"\n')
    args = ["tournament", "--config", str(config), "--buyers", "rule-buyer",
            "--sellers", "rule-seller", "--scenario-set", "agreemate", "--scenarios", "4",
            "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4/4 negotiations stored in" in out and str(tmp_path / "results" / "h.db") in out
    assert main(args) == 0
    assert "(0 run now, 4 before" in capsys.readouterr().out
    assert main([*args[:-3], "--scenarios", "0", "--no-progress"]) == 2
    assert "zero scenarios" in capsys.readouterr().err
    assert main([*args[:4], "nobody", *args[5:]]) == 2
    assert "unknown agent 'nobody'" in capsys.readouterr().err


def test_tournament_section_supplies_the_command_defaults(tmp_path, monkeypatch, capsys):
    """With config.py's EXTRA_SECTIONS entry for [tournament], the command's defaults come
    from config.toml (flags still override)."""
    from bot import config as config_module
    from bot.cli import main

    monkeypatch.setitem(config_module.EXTRA_SECTIONS, "tournament",
                        "bot.tournament:TournamentConfig.from_table")
    config = tmp_path / "config.toml"
    config.write_text('[agents.rule-buyer]\nkind = "rule"\nrole = "buyer"\n'
                      '[agents.rule-seller]\nkind = "rule"\nrole = "seller"\n'
                      '[tournament]\nagents = ["rule-buyer", "rule-seller"]\n'
                      'scenario_set = "agreemate"\nscenarios = 3\nrepetitions = 2\nseed = 4\n')
    cfg = config_module.load_config(config)
    assert tournament_config(cfg).repetitions == 2
    db = tmp_path / "h.db"
    assert main(["tournament", "--config", str(config), "--db", str(db), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "'rule-buyer,rule-seller.agreemate-3.seed4.rep2': 6/6" in out
    assert main(["tournament", "--config", str(config), "--db", str(db), "--no-progress",
                 "--repetitions", "1"]) == 0
    assert "agreemate-3.seed4.rep1': 3/3" in capsys.readouterr().out
    config.write_text(config.read_text() + "workers = 0\n")
    with pytest.raises(ConfigError, match="tournament.workers: must be >= 1"):
        config_module.load_config(config)

"""The paper's experiments as one grid file: agents expanded from axes, one tournament each pairing.

AgreeMate's results are a grid -- model scale x chain of thought x personality x fine-tuned
role models -- played on the same 30 scenarios. A grid file (TOML) declares the models and the
axes; ``expand_grid`` turns them into named agents and pairings, and ``run_experiment`` plays
every pairing as its own tournament, ``EXPERIMENT/BUYER+SELLER``, in one database (the
published runs are imported as ``agreemate/BUYER+SELLER``: the same shape, so reports put them
side by side). Each tournament is resumable, so rerunning the command finishes what is missing;
adding a model to the grid adds tournaments without touching the finished ones.

The grid file, its axes and the pairing modes are bot/grid.py's; the paper's tables and charts
over the stored runs are bot/report/paper.py's; importing the published runs is
bot/agreemate.py's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from bot.config import Config
from bot.errors import StoreError
from bot.grid import Grid, GridPairing, Variant, expand_grid, grid_config

if TYPE_CHECKING:
    from bot.agent_factory import AgentFactory
    from bot.store import Store
    from bot.tournament import Plan

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedTournament:
    pairing: GridPairing
    plan: Plan


@dataclass(frozen=True)
class ExperimentPlan:
    grid: Grid
    cfg: Config
    tournaments: tuple[PlannedTournament, ...]

    @property
    def name(self) -> str:
        return self.grid.name

    @property
    def planned(self) -> int:
        return sum(t.plan.planned for t in self.tournaments)

    @property
    def agents(self) -> dict[str, Variant]:
        return {v.name: v for t in self.tournaments for v in (t.pairing.buyer, t.pairing.seller)}


def tournament_name(experiment: str, buyer: str, seller: str) -> str:
    """``EXPERIMENT/BUYER+SELLER``: the imported runs' ``agreemate/BUYER+SELLER`` shape."""
    return f"{experiment}/{buyer}+{seller}"


def plan_experiment(base: Config, grid: Grid) -> ExperimentPlan:
    """Expand the grid and plan one tournament per pairing (no model is loaded)."""
    from bot.tournament import plan_tournament, select_scenarios

    pairings = expand_grid(grid)
    cfg = grid_config(base, grid, pairings)
    exp = grid.experiment
    # Drawn once and checked; every tournament draws the same scenarios with the same seed.
    select_scenarios(cfg, exp.scenario_set, exp.scenarios, exp.seed)
    planned = []
    for p in pairings:
        plan = plan_tournament(cfg, buyers=[p.buyer.name], sellers=[p.seller.name],
                               scenario_set=exp.scenario_set, scenarios=exp.scenarios,
                               seed=exp.seed, repetitions=exp.repetitions,
                               max_turns=exp.max_turns,
                               name=tournament_name(grid.name, p.buyer.name, p.seller.name))
        planned.append(PlannedTournament(p, plan))
    return ExperimentPlan(grid=grid, cfg=cfg, tournaments=tuple(planned))


# --------------------------------------------------------------------------- metadata


def agent_meta(plan: ExperimentPlan, v: Variant, snapshot_meta: Mapping[str, Any]) -> dict[str, Any]:
    """The tournament's agent metadata, told what the report's paper tables group by.

    ``family`` becomes the paper's (baseline/finetune/generalist); ``neutral_personality``
    is the personality that stands for "no personality prompt" (the baseline's), as
    ``default`` does in the imported runs.
    """
    return {**snapshot_meta, "family": v.family, "experiment": plan.name, "seat": v.seat,
            "grid_model": v.model, "policy": plan.grid.experiment.policy,
            "neutral_personality": plan.grid.baseline.personality}


def _agent_settings(cfg: Config, name: str) -> dict[str, Any]:
    return {k: v for k, v in asdict(cfg.agent(name)).items() if k != "name"}


async def check_agent_names(store: Store, plan: ExperimentPlan) -> None:
    """Refuse an agent name the database already uses for different settings or another model.

    Reports merge an agent's negotiations by name across tournaments, so one name must mean one
    agent everywhere in a database.
    """
    mine = {name: _agent_settings(plan.cfg, name) for name in plan.agents}
    for row in await store.tournaments():
        if row.kind != "tournament":
            continue
        settings = row.config.get("settings", {})
        for name, theirs in settings.get("agents", {}).items():
            if name in mine and theirs != mine[name]:
                changed = sorted(k for k in set(theirs) | set(mine[name])
                                 if theirs.get(k) != mine[name].get(k))
                raise StoreError(
                    f"agent {name!r} already plays in {row.name!r} in {store.path} with other "
                    f"settings ({', '.join(changed)}); one name must mean one agent in a "
                    f"database: rename the model in the grid, or use another --db")


async def ensure_tournament(store: Store, plan: ExperimentPlan, planned: PlannedTournament) -> None:
    """Create the tournament row with the grid's agent metadata, unless it exists.

    ``run_tournament`` then finds it and checks its set-up as for any resumed tournament.
    """
    from bot.tournament import snapshot

    if await store.tournament(planned.plan.name) is not None:
        return
    config, agents, models = snapshot(plan.cfg, planned.plan)
    p = planned.pairing
    agents = {p.buyer.name: agent_meta(plan, p.buyer, agents[p.buyer.name]),
              p.seller.name: agent_meta(plan, p.seller, agents[p.seller.name])}
    exp = plan.grid.experiment
    config["experiment"] = {"name": plan.name, "blocks": list(p.blocks),
                            "grid": str(plan.grid.path) if plan.grid.path else None,
                            "pairings": exp.pairings, "policy": exp.policy,
                            "baseline": {"model": plan.grid.baseline.model,
                                         "cot": plan.grid.baseline.cot,
                                         "personality": plan.grid.baseline.personality}}
    await store.create_tournament(planned.plan.name, config=config, agents=agents, models=models,
                                  seed=planned.plan.seed, planned=planned.plan.planned)


# --------------------------------------------------------------------------- running


@dataclass
class Progress:
    """How much of each tournament is stored (for the dry run and the summary)."""

    done: dict[str, int] = field(default_factory=dict)  # tournament name -> stored negotiations

    def stored(self, plan: ExperimentPlan) -> int:
        return sum(min(self.done.get(t.plan.name, 0), t.plan.planned) for t in plan.tournaments)


async def progress_of(store: Store, plan: ExperimentPlan) -> Progress:
    """Stored negotiations per planned tournament (planned keys only)."""
    progress = Progress()
    for t in plan.tournaments:
        row = await store.tournament(t.plan.name)
        if row is None:
            continue
        keys = {m.key for m in t.plan.matches()}
        progress.done[t.plan.name] = len(keys & await store.done_keys(row.id))
    return progress


@dataclass
class ExperimentStats:
    planned: int
    already_done: int
    ran: int = 0
    deals: int = 0
    errors: int = 0
    wall_seconds: float = 0.0
    error_examples: list[str] = field(default_factory=list)


def check_models(plan: ExperimentPlan) -> None:
    """Resolve every model file before the first negotiation (hf:// files download here), so
    a missing fine-tune stops the run at once rather than after hours of other pairings."""
    from bot.llm.models import LOCAL_BACKENDS, resolve_model

    for spec in plan.cfg.models.values():
        if spec.backend in LOCAL_BACKENDS:
            resolve_model(spec.path, plan.cfg.base_dir)


async def run_experiment(plan: ExperimentPlan, store: Store, *, workers: int | None = None,
                         progress: bool = True, retry_errors: bool = False,
                         factory: AgentFactory | None = None) -> ExperimentStats:
    """Play every tournament of the plan not yet complete; one agent factory for all of them,
    so each agent's model is loaded once per worker, not once per pairing."""
    from bot.agent_factory import AgentFactory
    from bot.tournament import run_tournament

    workers = plan.grid.experiment.workers if workers is None else workers
    await check_agent_names(store, plan)
    before = await progress_of(store, plan)
    stats = ExperimentStats(plan.planned, before.stored(plan))
    todo = [t for t in plan.tournaments
            if before.done.get(t.plan.name, 0) < t.plan.planned or retry_errors]
    if not todo:
        return stats
    check_models(plan)
    own_factory = factory is None
    factory = factory or AgentFactory(plan.cfg)
    t0 = time.perf_counter()
    try:
        for i, planned in enumerate(todo, 1):
            log.info("[%d/%d] %s", i, len(todo), planned.plan.name)
            await ensure_tournament(store, plan, planned)
            result = await run_tournament(plan.cfg, planned.plan, store, workers=workers,
                                          progress=progress, retry_errors=retry_errors,
                                          factory=factory)
            stats.ran += result.ran
            stats.deals += result.deals
            stats.errors += result.errors
            stats.error_examples += result.error_examples[:max(0, 3 - len(stats.error_examples))]
    finally:
        stats.wall_seconds = time.perf_counter() - t0
        if own_factory:
            await factory.aclose()
    return stats


# --------------------------------------------------------------------------- the plan in words


def describe(plan: ExperimentPlan, progress: Progress | None = None) -> str:
    """The plan as text: agents, pairings by block, tournaments, negotiations, what is left."""
    exp = plan.grid.experiment
    agents = dict(sorted(plan.agents.items(), key=lambda kv: (kv[1].seat, kv[0])))
    first = plan.tournaments[0].plan if plan.tournaments else None
    head = (f"experiment {plan.name!r}: {len(agents)} agents, {len(plan.tournaments)} pairings "
            f"(mode {exp.pairings}), {exp.scenarios} scenario(s) of {exp.scenario_set!r} x "
            f"{exp.repetitions} repetition(s), policy {exp.policy}, "
            f"max {first.max_turns if first else '-'} turns")
    baseline = plan.grid.baseline
    line = f"  baseline: {baseline.model}, cot={str(baseline.cot).lower()}, {baseline.personality}"
    lines = [head, line, "", "agents:"]
    width = max((len(n) for n in agents), default=10)
    for name, v in agents.items():
        spec = plan.cfg.models[v.model]
        lines.append(f"  {name.ljust(width)}  {v.seat:6s} {v.family:10s} model {v.model} "
                     f"({spec.path}), cot={str(v.cot).lower()}, {v.personality}")
    blocks: dict[str, int] = {}
    for t in plan.tournaments:
        for b in t.pairing.blocks:
            blocks[b] = blocks.get(b, 0) + 1
    lines += ["", "pairings by block (a pairing may serve several): "
              + ", ".join(f"{b} {n}" for b, n in blocks.items()), "", "tournaments:"]
    done = progress.done if progress else {}
    for t in plan.tournaments:
        stored = min(done.get(t.plan.name, 0), t.plan.planned)
        lines.append(f"  {t.plan.name}  [{', '.join(t.pairing.blocks)}]  "
                     f"{stored}/{t.plan.planned} stored")
    stored = progress.stored(plan) if progress else 0
    left = plan.planned - stored
    lines += ["", f"{plan.planned} negotiations planned, {stored} stored, {left} to run"]
    return "\n".join(lines)

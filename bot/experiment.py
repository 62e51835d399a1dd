"""The paper's experiments as one grid file: agents expanded from axes, one tournament each pairing.

AgreeMate's results are a grid -- model scale x chain of thought x personality x fine-tuned
role models -- played on the same 30 scenarios. A grid file (TOML) declares the models and the
axes; ``expand_grid`` turns them into named agents and pairings, and ``run_experiment`` plays
every pairing as its own tournament, ``EXPERIMENT/BUYER+SELLER``, in one database (the
published runs are imported as ``agreemate/BUYER+SELLER``: the same shape, so reports put them
side by side). Each tournament is resumable, so rerunning the command finishes what is missing;
adding a model to the grid adds tournaments without touching the finished ones.

A grid file::

    [experiment]
    name = "cpu-demo"            # tournament names start with "cpu-demo/"
    scenario_set = "agreemate"   # the paper's 30 scenarios (like for like with its runs)
    scenarios = 2                # drawn with seed (all of the set when it is the set's size)
    repetitions = 1
    seed = 0
    policy = "llm"               # "llm": the model decides act and price; "hybrid"
    pairings = "paper"           # "paper", "baseline" or "cross" (see below)
    max_turns = 10               # optional; default from [negotiation] of config.toml
    workers = 1

    [experiment.baseline]        # the reference agent (default: first model, no CoT, fair)
    model = "smol"
    cot = false
    personality = "fair"

    [models.smol]                # like config.toml's [models.NAME]; paths relative to the grid
    path = "embedded"

    [grid]
    models = ["smol"]            # base models: play either seat
    cot = [false, true]
    personality = ["aggressive", "fair", "passive"]
    buyer_models = []            # fine-tuned buyer specialists: the buyer seat only
    seller_models = []           # fine-tuned seller specialists: the seller seat only
    generalist_models = []       # fine-tuned generalists: either seat

    [agent]                      # settings every agent shares: any [agents.NAME] key of
    temperature = 0.7            # config.toml except kind, role, model, personality, cot, policy
    seed = 0

Agent names are ``MODEL[-cot]-PERSONALITY-SEAT`` (``3B-cot-fair-buyer``). Families follow the
paper's file names: base models are ``baseline``, buyer and seller specialists ``finetune``,
generalist fine-tunes ``generalist``.

Pairings:

- ``paper``: the paper's three experiments. Scale x CoT: every base model with and without CoT
  (baseline personality) as buyer against every one as seller. Personality: the baseline model
  and CoT setting with every buyer personality against every seller personality. Role models
  (baseline CoT and personality): fine-tuned buyers against fine-tuned sellers, each generalist
  against itself, each role model against the baseline agent of the other seat, and baseline
  against baseline.
- ``baseline``: every buyer variant against the baseline seller and every seller variant
  against the baseline buyer.
- ``cross``: every buyer variant against every seller variant.

Everything but the negotiation set-up ([negotiation], [data]) and the default database
([store]) comes from the grid file; the rest of config.toml is not used, so a grid file is a
complete, shareable description of an experiment.
"""

from __future__ import annotations

import logging
import math
import re
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bot.config import AgentConfig, Config, from_table
from bot.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

Personality = Literal["aggressive", "fair", "passive"]
SEATS = ("buyer", "seller")
PAIRING_MODES = ("paper", "baseline", "cross")
# What the grid sets on every agent itself; the [agent] table may not set these.
GRID_OWNED = ("name", "kind", "role", "model", "personality", "cot", "policy")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --------------------------------------------------------------------------- the grid file


@dataclass(frozen=True)
class Baseline:
    """``[experiment.baseline]``: the reference agent. ``model`` defaults to the first model."""

    model: str | None = None
    cot: bool = False
    personality: Personality = "fair"


@dataclass(frozen=True)
class ExperimentSettings:
    """``[experiment]``."""

    name: str
    scenario_set: str = "agreemate"
    scenarios: int = 30
    repetitions: int = 1
    seed: int = 0
    policy: Literal["llm", "hybrid"] = "llm"
    pairings: Literal["paper", "baseline", "cross"] = "paper"
    max_turns: int | None = None
    workers: int = 1

    def check(self, where: str) -> None:
        from bot.scenarios import SCENARIO_SETS

        if not _NAME.match(self.name):
            raise ConfigError(f"{where}.name: {self.name!r} must be letters, digits, '_', '.' or "
                              f"'-' (it starts every tournament name)")
        if self.scenario_set not in SCENARIO_SETS:
            raise ConfigError(f"{where}.scenario_set: must be one of {', '.join(SCENARIO_SETS)}, "
                              f"got {self.scenario_set!r}")
        for key in ("scenarios", "repetitions", "workers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: must be >= 1, got {getattr(self, key)}")
        if self.max_turns is not None and self.max_turns < 2:
            raise ConfigError(f"{where}.max_turns: must be >= 2, got {self.max_turns}")


@dataclass(frozen=True)
class Axes:
    """``[grid]``: the axes the agents are expanded over."""

    models: tuple[str, ...] = ()
    cot: tuple[bool, ...] = (False,)
    personality: tuple[Personality, ...] = ("fair",)
    buyer_models: tuple[str, ...] = ()
    seller_models: tuple[str, ...] = ()
    generalist_models: tuple[str, ...] = ()

    def check(self, where: str) -> None:
        if not self.models:
            raise ConfigError(f"{where}.models: name at least one base model (a [models.NAME] "
                              f"table); it is the baseline the other agents are compared with")
        for key in ("cot", "personality"):
            values = getattr(self, key)
            if not values:
                raise ConfigError(f"{where}.{key}: give at least one value")
            if len(set(values)) != len(values):
                raise ConfigError(f"{where}.{key}: a value is listed twice: {list(values)}")
        listed: dict[str, str] = {}
        for key in ("models", "buyer_models", "seller_models", "generalist_models"):
            for model in getattr(self, key):
                if model in listed:
                    raise ConfigError(f"{where}.{key}: model {model!r} is already listed in "
                                      f"{where}.{listed[model]}; a model has one role")
                listed[model] = key

    def family(self, model: str) -> str:
        if model in self.models:
            return "baseline"
        return "generalist" if model in self.generalist_models else "finetune"

    def seats(self, model: str) -> tuple[str, ...]:
        if model in self.buyer_models:
            return ("buyer",)
        if model in self.seller_models:
            return ("seller",)
        return SEATS

    @property
    def all_models(self) -> tuple[str, ...]:
        return self.models + self.buyer_models + self.seller_models + self.generalist_models


@dataclass(frozen=True)
class Grid:
    """A validated grid file."""

    path: Path | None
    experiment: ExperimentSettings
    baseline: Baseline
    axes: Axes
    models: Mapping[str, Any]  # name -> bot.llm.models.ModelSpec
    agent: Mapping[str, Any]   # the [agent] table (validated against AgentConfig)

    @property
    def name(self) -> str:
        return self.experiment.name


_SECTIONS = ("experiment", "models", "grid", "agent")


def parse_grid(raw: Mapping[str, Any], path: Path | None = None) -> Grid:
    """Validate a parsed grid file; every error names its key and says what to do."""
    from bot.llm.models import ModelSpec

    where = str(path) if path else "grid"
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) [{', '.join(unknown)}] (a grid file has "
                          f"{', '.join(f'[{s}]' for s in _SECTIONS)})")
    if "experiment" not in raw:
        raise ConfigError(f"{where}: missing [experiment] (at least name = \"...\")")
    if not isinstance(raw["experiment"], Mapping):
        raise ConfigError(f"experiment: expected a table, got {raw['experiment']!r}")
    table = dict(raw["experiment"])
    baseline_raw = table.pop("baseline", {})
    if "name" not in table:
        raise ConfigError("experiment.name: missing; name the experiment (its tournaments are "
                          "called NAME/BUYER+SELLER)")
    settings = from_table(ExperimentSettings, table, "experiment")
    baseline = from_table(Baseline, baseline_raw, "experiment.baseline")
    axes = from_table(Axes, raw.get("grid", {}), "grid")

    models_raw = raw.get("models", {})
    if not isinstance(models_raw, Mapping) or not models_raw:
        raise ConfigError("models: declare the grid's models as [models.NAME] tables (path = "
                          "\"embedded\", a .gguf path or hf://OWNER/REPO/FILE.gguf)")
    base_dir = path.parent if path else Path.cwd()
    models = {}
    for name, spec in models_raw.items():
        if not _NAME.match(name):
            raise ConfigError(f"models.{name}: a model name must be letters, digits, '_', '.' or "
                              f"'-' (it starts agent names)")
        models[name] = ModelSpec.from_table(name, spec, base_dir)
    for key in ("models", "buyer_models", "seller_models", "generalist_models"):
        for model in getattr(axes, key):
            if model not in models:
                raise ConfigError(f"grid.{key}: no model named {model!r}; declared: "
                                  f"{', '.join(models)} (add a [models.{model}] table)")
    unused = [m for m in models if m not in axes.all_models]
    if unused:
        raise ConfigError(f"models.{unused[0]}: declared but on no axis; list it in grid.models, "
                          f"grid.buyer_models, grid.seller_models or grid.generalist_models, or "
                          f"remove it")

    if baseline.model is None:
        baseline = replace(baseline, model=axes.models[0])
    elif baseline.model not in axes.models:
        raise ConfigError(f"experiment.baseline.model: {baseline.model!r} is not a base model of "
                          f"grid.models ({', '.join(axes.models)})")
    if baseline.cot not in axes.cot:
        raise ConfigError(f"experiment.baseline.cot: {str(baseline.cot).lower()} is not among "
                          f"grid.cot {[str(c).lower() for c in axes.cot]}")
    if baseline.personality not in axes.personality:
        raise ConfigError(f"experiment.baseline.personality: {baseline.personality!r} is not "
                          f"among grid.personality {list(axes.personality)}")

    agent = raw.get("agent", {})
    if not isinstance(agent, Mapping):
        raise ConfigError(f"agent: expected a table, got {agent!r}")
    for key in agent:
        if key in GRID_OWNED:
            raise ConfigError(f"agent.{key}: set by the grid for every agent; remove it (the "
                              f"axes are [grid] cot/personality, the policy is experiment.policy)")
    # Validated once here; every agent is built from the same table.
    from_table(AgentConfig, agent, "agent", name="check", kind="llm", role="buyer",
               model=axes.models[0], personality="fair", cot=False, policy=settings.policy)
    return Grid(path=path, experiment=settings, baseline=baseline, axes=axes, models=models,
                agent=dict(agent))


def load_grid(path: str | Path) -> Grid:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"grid file {path} does not exist; see examples/grid_cpu.toml")
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_grid(raw, path)


# --------------------------------------------------------------------------- expansion


@dataclass(frozen=True)
class Variant:
    """One agent of the grid: a model in one seat with a CoT setting and a personality."""

    model: str
    family: str  # baseline | finetune | generalist (the paper's file-name families)
    seat: str
    cot: bool
    personality: str

    @property
    def name(self) -> str:
        return f"{self.model}{'-cot' if self.cot else ''}-{self.personality}-{self.seat}"


@dataclass(frozen=True)
class GridPairing:
    buyer: Variant
    seller: Variant
    blocks: tuple[str, ...]  # which of the paper's experiments it belongs to

    @property
    def key(self) -> tuple[str, str]:
        return (self.buyer.name, self.seller.name)


def variants(grid: Grid) -> list[Variant]:
    """Every model x CoT x personality x seat the grid allows, in a stable order."""
    out = []
    for model in grid.axes.all_models:
        for seat in grid.axes.seats(model):
            for cot in grid.axes.cot:
                for personality in grid.axes.personality:
                    out.append(Variant(model, grid.axes.family(model), seat, cot, personality))
    return out


def expand_grid(grid: Grid) -> list[GridPairing]:
    """The pairings to play, each once (a pairing in several blocks lists them all)."""
    every = variants(grid)
    base = grid.baseline

    def pick(seat: str, *, families: Sequence[str] = ("baseline",), models: Sequence[str] = (),
             cot: bool | None = None, personality: str | None = None) -> list[Variant]:
        return [v for v in every if v.seat == seat and v.family in families
                and (not models or v.model in models)
                and (cot is None or v.cot == cot)
                and (personality is None or v.personality == personality)]

    def reference(seat: str) -> Variant:
        return Variant(base.model, "baseline", seat, base.cot, base.personality)

    pairs: dict[tuple[str, str], GridPairing] = {}

    def add(buyers: Sequence[Variant], sellers: Sequence[Variant], block: str) -> None:
        for b in buyers:
            for s in sellers:
                key = (b.name, s.name)
                if key in pairs:
                    if block not in pairs[key].blocks:
                        pairs[key] = replace(pairs[key], blocks=pairs[key].blocks + (block,))
                else:
                    pairs[key] = GridPairing(b, s, (block,))

    mode = grid.experiment.pairings
    roles = ("baseline", "finetune", "generalist")
    if mode == "cross":
        add([v for v in every if v.seat == "buyer"], [v for v in every if v.seat == "seller"],
            "cross")
    elif mode == "baseline":
        add([v for v in every if v.seat == "buyer"], [reference("seller")], "baseline")
        add([reference("buyer")], [v for v in every if v.seat == "seller"], "baseline")
    else:
        neutral = base.personality
        add(pick("buyer", personality=neutral), pick("seller", personality=neutral), "scale-cot")
        add(pick("buyer", models=[base.model], cot=base.cot),
            pick("seller", models=[base.model], cot=base.cot), "personality")
        role_models = (grid.axes.buyer_models + grid.axes.seller_models
                       + grid.axes.generalist_models)
        if role_models:
            same = {"cot": base.cot, "personality": neutral}
            add(pick("buyer", families=["finetune"], **same),
                pick("seller", families=["finetune"], **same), "roles")
            for model in grid.axes.generalist_models:
                add(pick("buyer", families=["generalist"], models=[model], **same),
                    pick("seller", families=["generalist"], models=[model], **same), "roles")
            add(pick("buyer", families=roles[1:], **same), [reference("seller")], "roles")
            add([reference("buyer")], pick("seller", families=roles[1:], **same), "roles")
            add([reference("buyer")], [reference("seller")], "roles")
    return list(pairs.values())


def agent_table(grid: Grid, v: Variant) -> dict[str, Any]:
    """The [agents.NAME] table of one variant."""
    return {**grid.agent, "kind": "llm", "role": v.seat, "model": v.model,
            "personality": v.personality, "cot": v.cot, "policy": grid.experiment.policy}


def grid_config(base: Config, grid: Grid, pairings: Sequence[GridPairing]) -> Config:
    """``base`` (negotiation, data, store) with the grid's models and agents."""
    used = {v.name: v for p in pairings for v in (p.buyer, p.seller)}
    agents = {name: from_table(AgentConfig, agent_table(grid, v), f"agents.{name}", name=name)
              for name, v in used.items()}
    models = {name: spec for name, spec in grid.models.items()
              if any(a.model == name for a in agents.values())}
    return replace(base, models=models, agents=agents)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedTournament:
    pairing: GridPairing
    plan: Any  # bot.tournament.Plan


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
    from dataclasses import asdict

    return {k: v for k, v in asdict(cfg.agent(name)).items() if k != "name"}


async def check_agent_names(store: Any, plan: ExperimentPlan) -> None:
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


async def ensure_tournament(store: Any, plan: ExperimentPlan, planned: PlannedTournament) -> None:
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


async def progress_of(store: Any, plan: ExperimentPlan) -> Progress:
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
    from bot.llm.models import resolve_model

    for spec in plan.cfg.models.values():
        if spec.backend == "llamacpp":
            resolve_model(spec.path, plan.cfg.base_dir)


async def run_experiment(plan: ExperimentPlan, store: Any, *, workers: int | None = None,
                         progress: bool = True, retry_errors: bool = False,
                         factory: Any = None) -> ExperimentStats:
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


# --------------------------------------------------------------------------- reference runs


async def import_reference_runs(store: Any, cfg: Config) -> tuple[int, int]:
    """Import the published AgreeMate runs ([data] agreemate_results) that the database lacks.

    Returns (files imported now, files already there). Files already imported are not read.
    """
    from bot.datasets import parse_agreemate_name
    from bot.errors import DataError
    from bot.tournament import AGREEMATE_PREFIX, import_agreemate

    folder = cfg.resolve_path(cfg.data.agreemate_results)
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        raise DataError(f"no AgreeMate result CSVs in {folder}: set [data] agreemate_results in "
                        f"config.toml to the folder of the published runs, or drop "
                        f"--with-agreemate")
    present = {t.name for t in await store.tournaments()}
    imported = 0
    for path in files:
        if AGREEMATE_PREFIX + path.stem in present:
            continue
        parse_agreemate_name(path)
        await import_agreemate(store, path, cfg)
        imported += 1
    return imported, len(files) - imported


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



# --------------------------------------------------------------------------- the paper's tables
#
# ``haggle report`` calls ``paper_comparisons`` and renders ``paper_tables``: AgreeMate's
# comparisons over any experiment of this module and the imported published runs, side by side.
# Which experiment a negotiation belongs to is read from the agents' metadata (the AgreeMate
# importer derives the same fields from the paper's file names), so the rules below apply to
# both sources alike:
#
# - scale x CoT: both agents baseline family with the neutral personality (the paper's runs
#   without a personality prompt; an experiment's baseline personality);
# - personality: both agents baseline family, same model scale and CoT setting;
# - role models: both neutral and the same CoT setting, at least one fine-tuned or generalist
#   agent, plus baseline-vs-baseline at the role models' scale as the reference row.

PAPER_METRICS = ("agreed", "aggressiveness", "bias", "dialogue_length", "fairness",
                 "concession_rate", "probing_ratio", "relative_efficiency")
PAPER_LABELS = {"agreed": "agreement", "aggressiveness": "aggressiveness", "bias": "bias",
                "dialogue_length": "dialogue length", "fairness": "fairness",
                "concession_rate": "concession rate", "probing_ratio": "probing ratio",
                "relative_efficiency": "relative efficiency"}
AGREEMATE_SOURCE = "AgreeMate"
_PERSONALITY_ORDER = ("aggressive", "fair", "passive", "default")


def _source(meta: Mapping[str, Any]) -> str | None:
    if meta.get("source") == "agreemate":
        return AGREEMATE_SOURCE
    return meta.get("experiment")


def _neutral(meta: Mapping[str, Any]) -> bool:
    return meta.get("personality") == meta.get("neutral_personality", "default")


def _scale_key(scale: Any) -> float:
    match = re.match(r"^(\d+(?:\.\d+)?)([KMB])$", str(scale or ""))
    if not match:
        return float("inf")
    return float(match.group(1)) * {"K": 1e3, "M": 1e6, "B": 1e9}[match.group(2)]


def _personality_key(p: Any) -> int:
    return _PERSONALITY_ORDER.index(p) if p in _PERSONALITY_ORDER else len(_PERSONALITY_ORDER)


def _summaries(negs: Sequence[Any], keys: Sequence[str] = PAPER_METRICS) -> dict[str, Any]:
    from bot.report import summarise

    return {k: summarise(n.metrics.get(k) for n in negs) for k in keys}


def _source_order(sources: Sequence[str]) -> list[str]:
    """Experiments first (in the order met), the published runs last: ours beside theirs."""
    return [s for s in sources if s != AGREEMATE_SOURCE] + (
        [AGREEMATE_SOURCE] if AGREEMATE_SOURCE in sources else [])


def paper_comparisons(negotiations: Sequence[Any],
                      meta: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """AgreeMate's comparisons as a JSON-ready dict: ``cot``, ``scale``, ``personality``,
    ``roles`` (each empty when the runs do not vary that axis) and the scenario ``note``.

    Published pairings kept in two versions count once, in the ``_updated`` one: the paper's
    CoT table was computed on those files (imported alone, they give its aggressiveness, bias,
    dialogue length and fairness; tests/test_experiment.py checks it). Like for like: when
    experiments and published runs are both present, the published runs count only on the
    scenarios the experiments played.
    """
    tournaments = {n.tournament for n in negotiations}
    rows = []
    for n in negotiations:
        b, s = meta.get(n.buyer), meta.get(n.seller)
        if not b or not s or b.get("kind") != "llm" or s.get("kind") != "llm":
            continue
        source = _source(b)
        if source is None or source != _source(s):
            continue
        if source == AGREEMATE_SOURCE and n.tournament + "_updated" in tournaments:
            continue
        rows.append((n, b, s, source))
    ours = {n.scenario_id for n, _, _, src in rows if src != AGREEMATE_SOURCE}
    theirs = {n.scenario_id for n, _, _, src in rows if src == AGREEMATE_SOURCE}
    note = ""
    if ours and theirs:
        shared = ours & theirs
        if shared:
            rows = [r for r in rows if r[3] != AGREEMATE_SOURCE or r[0].scenario_id in shared]
            note = (f"AgreeMate's published runs are counted on the {len(shared)} scenario(s) "
                    f"the experiments played, like for like.")
        else:
            note = ("The experiments played none of the AgreeMate runs' scenarios: not like for "
                    "like (use scenario_set = \"agreemate\" in the grid).")
    caps = {src: sorted({r[0].max_turns for r in rows if (r[3] == AGREEMATE_SOURCE) == src})
            for src in (True, False)}
    if caps[True] and caps[False] and caps[True] != caps[False]:
        note += (f" Turn caps differ: the experiments {'/'.join(map(str, caps[False]))}, the "
                 f"published runs {'/'.join(map(str, caps[True]))}.")
    sources = _source_order(list(dict.fromkeys(r[3] for r in rows)))
    return {"sources": sources, "note": note.strip(),
            "cot": _paper_cot(rows, sources), "scale": _paper_scale(rows),
            "personality": _paper_personality(rows), "roles": _paper_roles(rows)}


def _scale_cot_block(rows: Sequence[tuple]) -> list[tuple]:
    """Baseline agents with the neutral personality on both sides, at the scales a source ran
    both with and without CoT (the paper's 3B, 8B and 70B; not its lone 1B pairings)."""
    block = [r for r in rows if r[1].get("family") == r[2].get("family") == "baseline"
             and _neutral(r[1]) and _neutral(r[2])]
    both: dict[str, set] = {}
    for source in {r[3] for r in block}:
        seen = {(m.get("scale"), bool(m.get("cot"))) for r in block if r[3] == source
                for m in (r[1], r[2])}
        both[source] = {scale for scale, cot in seen if (scale, not cot) in seen}
    return [r for r in block
            if r[1].get("scale") in both[r[3]] and r[2].get("scale") in both[r[3]]]


def _macro(rows: Sequence[tuple], keys: Sequence[str] = PAPER_METRICS) -> dict[str, Any]:
    """Means of the pairings' means, as the paper averaged its combinations: each pairing
    weighs the same however many of its negotiations define a metric (fairness: deals only).
    ``n`` counts the pairings that define the metric, ``values`` their negotiations."""
    from statistics import fmean

    pairings: dict[tuple, list[Any]] = {}
    for r in rows:
        pairings.setdefault((r[0].tournament, r[0].buyer, r[0].seller), []).append(r[0])
    out = {}
    for key in keys:
        means, values = [], 0
        for negs in pairings.values():
            xs = [float(v) for n in negs if (v := n.metrics.get(key)) is not None]
            if xs:
                means.append(fmean(xs))
                values += len(xs)
        out[key] = {"mean": fmean(means) if means else None, "n": len(means), "values": values}
    return out


def _paper_cot(rows: Sequence[tuple], sources: Sequence[str]) -> list[dict[str, Any]]:
    """Per source: scale x CoT pairings where either agent reasons vs where neither does
    (the paper's table "with and without CoT"), as means of the pairings' means."""
    block = _scale_cot_block(rows)
    out = []
    for source in sources:
        mine = [r for r in block if r[3] == source]
        with_cot = [r for r in mine if r[1].get("cot") or r[2].get("cot")]
        without = [r for r in mine if not (r[1].get("cot") or r[2].get("cot"))]
        if with_cot and without:
            for cot, group in ((True, with_cot), (False, without)):
                out.append({"source": source, "cot": cot, "negotiations": len(group),
                            "pairings": len({(r[0].tournament, r[0].buyer, r[0].seller)
                                             for r in group}),
                            "metrics": _macro(group)})
    return out


def _paper_scale(rows: Sequence[tuple]) -> list[dict[str, Any]]:
    """Per source, seat, the seated agent's scale and CoT setting: the scale x CoT pairings it
    played in that seat, as means of the pairings' means."""
    groups: dict[tuple, list[tuple]] = {}
    for r in _scale_cot_block(rows):
        for seat, m in (("buyer", r[1]), ("seller", r[2])):
            groups.setdefault((r[3], seat, m.get("scale"), bool(m.get("cot"))), []).append(r)
    if len({(k[2], k[3]) for k in groups}) < 2:
        return []
    order = {s: i for i, s in enumerate(_source_order(list(dict.fromkeys(k[0] for k in groups))))}
    keys = sorted(groups, key=lambda k: (k[1] != "buyer", _scale_key(k[2]), k[3], order[k[0]]))
    return [{"source": k[0], "seat": k[1], "scale": k[2], "cot": k[3],
             "negotiations": len(groups[k]),
             "pairings": len({(r[0].tournament, r[0].buyer, r[0].seller) for r in groups[k]}),
             "metrics": _macro(groups[k])} for k in keys]


def _paper_personality(rows: Sequence[tuple]) -> list[dict[str, Any]]:
    """Buyer personality x seller personality, per source, scale and CoT setting."""
    groups: dict[tuple, dict[tuple[str, str], list[Any]]] = {}
    for n, b, s, source in rows:
        if not (b.get("family") == s.get("family") == "baseline"
                and b.get("scale") == s.get("scale") and bool(b.get("cot")) == bool(s.get("cot"))
                and b.get("grid_model") == s.get("grid_model")):
            continue
        key = (source, b.get("scale"), bool(b.get("cot")))
        cell = (b.get("personality"), s.get("personality"))
        groups.setdefault(key, {}).setdefault(cell, []).append(n)
    out = []
    order = {s: i for i, s in enumerate(_source_order(list(dict.fromkeys(k[0] for k in groups))))}
    for key in sorted(groups, key=lambda k: (order[k[0]], _scale_key(k[1]), k[2])):
        cells = groups[key]
        if len({c[0] for c in cells}) < 2 and len({c[1] for c in cells}) < 2:
            continue  # one personality on each side: nothing to compare
        out.append({"source": key[0], "scale": key[1], "cot": key[2],
                    "buyers": sorted({c[0] for c in cells}, key=_personality_key),
                    "sellers": sorted({c[1] for c in cells}, key=_personality_key),
                    "cells": [{"buyer": c[0], "seller": c[1], "n": len(negs),
                               "metrics": _summaries(negs, ("agreed", "fairness", "bias",
                                                            "dialogue_length"))}
                              for c, negs in sorted(cells.items(), key=lambda kv: (
                                  _personality_key(kv[0][0]), _personality_key(kv[0][1])))]})
    return out


def _paper_roles(rows: Sequence[tuple]) -> list[dict[str, Any]]:
    """Fine-tuned vs base vs generalist: pairings of role models, and baseline vs baseline at
    the role models' scale, per source and CoT setting."""
    neutral = [r for r in rows if _neutral(r[1]) and _neutral(r[2])
               and bool(r[1].get("cot")) == bool(r[2].get("cot"))]
    role_scales = {(r[3], m.get("scale")) for r in neutral for m in (r[1], r[2])
                   if m.get("family") != "baseline"}
    groups: dict[tuple, list[Any]] = {}
    for n, b, s, source in neutral:
        both_base = b.get("family") == s.get("family") == "baseline"
        if both_base and not ((source, b.get("scale")) in role_scales
                              and b.get("scale") == s.get("scale")):
            continue
        key = (source, bool(b.get("cot")), b.get("family"), b.get("scale"), s.get("family"),
               s.get("scale"))
        groups.setdefault(key, []).append(n)
    family_order = {"baseline": 0, "finetune": 1, "generalist": 2}
    order = {s: i for i, s in enumerate(_source_order(list(dict.fromkeys(k[0] for k in groups))))}
    keys = sorted(groups, key=lambda k: (order[k[0]], k[1], family_order.get(k[2], 9),
                                         family_order.get(k[4], 9), _scale_key(k[3])))
    out = [{"source": k[0], "cot": k[1], "buyer_family": k[2], "buyer_scale": k[3],
            "seller_family": k[4], "seller_scale": k[5], "n": len(groups[k]),
            "metrics": _summaries(groups[k], PAPER_METRICS + ("buyer_surplus_share",))}
           for k in keys]
    by_source: dict[tuple, int] = {}
    for r in out:
        by_source[(r["source"], r["cot"])] = by_source.get((r["source"], r["cot"]), 0) + 1
    return [r for r in out if by_source[(r["source"], r["cot"])] >= 2]


def paper_tables(paper: Mapping[str, Any]) -> list[Any]:
    """The paper's comparisons as ``bot.report.Table`` objects (none when nothing varies)."""
    from bot.report import Table, fmt, fmt_pct

    tables = []
    note = paper.get("note", "")

    def cell(key: str, summary: Mapping[str, Any]) -> str:
        return fmt_pct(summary) if key == "agreed" else fmt(summary["mean"])

    def macro(key: str, summary: Mapping[str, Any]) -> str:
        if summary["mean"] is None:
            return "-"
        return f"{100 * summary['mean']:.0f}%" if key == "agreed" else fmt(summary["mean"], 4)

    cot = paper.get("cot", [])
    if cot:
        headers = ["metric"] + [f"{c['source']} {'with' if c['cot'] else 'without'} CoT"
                                for c in cot]
        rows = [["pairings"] + [str(c["pairings"]) for c in cot],
                ["negotiations"] + [str(c["negotiations"]) for c in cot]]
        rows += [[PAPER_LABELS[k]] + [macro(k, c["metrics"][k]) for c in cot]
                 for k in PAPER_METRICS]
        tables.append(Table(
            "Paper: combinations with vs without chain of thought", headers, rows,
            "The scale x CoT pairings: baseline agents with no personality prompt (AgreeMate) or "
            "the baseline personality (experiments), at the scales run both ways. 'with CoT' = "
            "at least one agent reasons. Means of the pairings' means, as the paper averaged "
            "(on the published runs this gives its aggressiveness, bias, dialogue length and "
            "fairness; its concession rate and relative efficiency used other formulas). " + note))

    scale = paper.get("scale", [])
    if scale:
        keys = ("agreed", "fairness", "bias", "aggressiveness", "dialogue_length",
                "concession_rate", "probing_ratio", "relative_efficiency")
        tables.append(Table(
            "Paper: model scale and CoT, by the agent in each seat",
            ["source", "seat", "scale", "CoT", "pairings", "n"] + [PAPER_LABELS[k] for k in keys],
            [[r["source"], r["seat"], fmt(r["scale"]), fmt(r["cot"]), str(r["pairings"]),
              str(r["negotiations"])] + [macro(k, r["metrics"][k]) for k in keys]
             for r in scale],
            "The scale x CoT pairings in which an agent of that scale and CoT setting held the "
            "seat, whoever sat opposite; means of the pairings' means. " + note))

    personality = paper.get("personality", [])
    if personality:
        sellers = sorted({p for g in personality for p in g["sellers"]}, key=_personality_key)
        for key, title, shown in (
                ("agreed", "agreement rate", lambda s: fmt_pct(s).split(" [")[0]),
                ("fairness", "fairness (deals)", lambda s: fmt(s["mean"])),
                ("bias", "bias (deals; +1 = buyer's target)", lambda s: fmt(s["mean"]))):
            rows = []
            for g in personality:
                cells = {(c["buyer"], c["seller"]): c for c in g["cells"]}
                label = f"{g['source']} {g['scale'] or ''}{' CoT' if g['cot'] else ''}".strip()
                for buyer in g["buyers"]:
                    row = [label, buyer]
                    for seller in sellers:
                        c = cells.get((buyer, seller))
                        if c is None:
                            row.append("")
                        elif c["metrics"][key]["n"] == 0:
                            row.append("no deals")
                        else:
                            row.append(f"{shown(c['metrics'][key])} (n={c['metrics'][key]['n']})")
                    rows.append(row)
            tables.append(Table(
                f"Paper: personality pairings, {title}",
                ["source", "buyer \\ seller"] + sellers, rows,
                "Rows: the buyer's personality; columns: the seller's ('default' = no personality "
                "prompt). n counts negotiations for agreement, deals otherwise. " + note))

    roles = paper.get("roles", [])
    if roles:
        keys = ("agreed", "fairness", "bias", "aggressiveness", "dialogue_length",
                "probing_ratio", "buyer_surplus_share")
        tables.append(Table(
            "Paper: fine-tuned vs base vs generalist",
            ["source", "CoT", "buyer", "seller", "n"]
            + [PAPER_LABELS.get(k, "buyer surplus") for k in keys],
            [[r["source"], fmt(r["cot"]), f"{r['buyer_family']} {r['buyer_scale'] or ''}".strip(),
              f"{r['seller_family']} {r['seller_scale'] or ''}".strip(), str(r["n"])]
             + [cell(k, r["metrics"][k]) for k in keys] for r in roles],
            "Role models against each other and against the baseline of the other seat, beside "
            "baseline vs baseline at the same scale. " + note))
    return tables


# --------------------------------------------------------------------------- the paper's charts


def write_paper_plots(plt: Any, paper: Mapping[str, Any], out: Path) -> list[Path]:
    """paper_cot.png (each metric, with vs without CoT, per source) and
    paper_personality.png (buyer x seller personality heatmaps of agreement, fairness and bias,
    per source); only those the data allow, and only when an experiment of this module is in
    the report (the published runs alone keep the report's usual charts)."""
    written: list[Path] = []
    if not any(source != AGREEMATE_SOURCE for source in paper.get("sources", [])):
        return written
    if paper.get("cot"):
        written.append(_plot_paper_cot(plt, paper, out / "paper_cot.png"))
    if paper.get("personality"):
        written.append(_plot_paper_personality(plt, paper, out / "paper_personality.png"))
    return written


def _plot_paper_cot(plt: Any, paper: Mapping[str, Any], path: Path) -> Path:
    cot = paper["cot"]
    sources = list(dict.fromkeys(c["source"] for c in cot))
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.2))
    width = 0.38
    colours = {True: "#d95f02", False: "#7570b3"}
    for ax, key in zip(axes.flat, PAPER_METRICS):
        for offset, with_cot in ((-width / 2, True), (width / 2, False)):
            values = []
            for source in sources:
                c = next((c for c in cot if c["source"] == source and c["cot"] == with_cot), None)
                mean = None if c is None else c["metrics"][key]["mean"]
                values.append(float("nan") if mean is None else mean)
            xs = [i + offset for i in range(len(sources))]
            bars = ax.bar(xs, values, width, color=colours[with_cot],
                          label="with CoT" if with_cot else "without CoT")
            for bar, value in zip(bars, values):
                if not math.isnan(value):
                    text = f"{100 * value:.0f}%" if key == "agreed" else f"{value:.3g}"
                    ax.annotate(text, (bar.get_x() + bar.get_width() / 2, value),
                                ha="center", va="bottom" if value >= 0 else "top", fontsize=7,
                                xytext=(0, 2 if value >= 0 else -2), textcoords="offset points")
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_xticks(range(len(sources)), sources, fontsize=8)
        ax.set_title(PAPER_LABELS[key], fontsize=10, loc="left")
        ax.margins(y=0.18)
        if key == "agreed":
            ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=9, frameon=False)
    pairings = ", ".join(f"{c['source']} {'with' if c['cot'] else 'without'}: {c['pairings']}"
                         for c in cot)
    fig.suptitle("With vs without chain of thought (scale x CoT pairings; means of the pairings' "
                 f"means)\npairings: {pairings}", x=0.01, ha="left", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_paper_personality(plt: Any, paper: Mapping[str, Any], path: Path) -> Path:
    import numpy as np

    groups = paper["personality"]
    panels = (("agreed", "agreement rate", "Greens", (0.0, 1.0)),
              ("fairness", "fairness of deals (1 = midway)", "RdYlGn", (-1.0, 1.0)),
              ("bias", "bias of deals (+1 = buyer's target)", "RdBu", (-1.5, 1.5)))
    fig, axes = plt.subplots(len(groups), len(panels), squeeze=False,
                             figsize=(3.9 * len(panels), 3.4 * len(groups) + 0.4))
    for row, g in zip(axes, groups):
        cells = {(c["buyer"], c["seller"]): c for c in g["cells"]}
        label = f"{g['source']} {g['scale'] or ''}{' CoT' if g['cot'] else ''}".strip()
        for ax, (key, title, cmap, (lo, hi)) in zip(row, panels):
            grid = np.full((len(g["buyers"]), len(g["sellers"])), np.nan)
            for i, b in enumerate(g["buyers"]):
                for j, s in enumerate(g["sellers"]):
                    c = cells.get((b, s))
                    if c is not None and c["metrics"][key]["mean"] is not None:
                        grid[i, j] = c["metrics"][key]["mean"]
            colours = plt.get_cmap(cmap).with_extremes(bad="#e8e8e8")
            ax.imshow(np.ma.masked_invalid(grid), cmap=colours, vmin=lo, vmax=hi, aspect="auto")
            for i, b in enumerate(g["buyers"]):
                for j, s in enumerate(g["sellers"]):
                    c = cells.get((b, s))
                    if c is None:
                        continue
                    n = c["metrics"][key]["n"]
                    text = ("no deals" if n == 0 else
                            f"{100 * grid[i, j]:.0f}%" if key == "agreed" else f"{grid[i, j]:.2f}")
                    rgba = colours((grid[i, j] - lo) / (hi - lo)) if n else (1.0, 1.0, 1.0)
                    dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
                    ax.text(j, i, f"{text}\nn={n}", ha="center", va="center", fontsize=7.5,
                            color="white" if dark else "black")
            ax.set_xticks(range(len(g["sellers"])), g["sellers"], fontsize=8)
            ax.set_yticks(range(len(g["buyers"])), g["buyers"], fontsize=8)
            ax.set_xlabel("seller personality", fontsize=8)
            ax.set_ylabel("buyer personality", fontsize=8)
            ax.set_title(f"{label}\n{title}", fontsize=9, loc="left")
    fig.suptitle("Personality pairings (rows: buyer, columns: seller; n = negotiations for "
                 "agreement, deals otherwise)", x=0.01, ha="left", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
